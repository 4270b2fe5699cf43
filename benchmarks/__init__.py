"""Benchmarks: Spark and Ray against each other, against hand-written jobs and against the ceiling.

``python -m benchmarks.run`` (``make bench``); benchmarks/README.md says how to read the results.
Shared parts: ``harness`` (runner, ``Target``, Markdown, machine record) and ``targets``.
"""
