"""Parity: comparing outputs matched on a key, the reports, and the three-way parity runner.

Imports nothing from the run path except ``common.errors``, apart from the runner
(``common.parity.runner``), which runs the job on each side."""
