"""Parity: comparing outputs matched on a key, the reports, and the three-way parity runner.

Imports nothing from the run path, apart from the runner (``common.parity.runner``), which runs the
job on each side; the ``[parity]`` settings it compares by are read with the job (``common.spec``)."""
