"""Benchmarks: Spark and Ray against each other, against hand-written jobs and against the ceiling.

``python -m benchmarks.run`` (``make bench``); see README.md, "Benchmarks", for how to read the results.
"""
