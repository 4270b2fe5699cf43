"""The parity suite is written once and parametrised over backends (the Ibis / Fugue way).

Each test takes the ``backend`` fixture (root conftest: every engine backend in the registry) and
checks that backend against the single-process reference executor; engines start once per session.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from common.parity.compare import compare_outputs
from common.parity.report import format_summary
from common.run.runner import run_job
from common.spec.job import Job, load_job
from tests import support


def run_against_reference(job: Job, backend: str, out: Path, reference_out: Path | None = None):
    """Runs ``job`` on ``backend`` and on the reference (unless given) and compares them."""
    if reference_out is None:
        reference_out = out / "reference"
        run_job(replace(job, output_path=reference_out, overwrite=True), "reference")
    run_job(replace(job, output_path=out / backend, overwrite=True), backend)
    report = compare_outputs(
        {backend: out / backend, "reference": reference_out},
        list(job.key),
        job.parity,
        reference="reference",
        work_dir=out / "_work",
    )
    return report


def assert_parity(report) -> None:
    assert report.ok, "\n" + format_summary(report)


def write_job(folder: Path, input_path: Path, bundle: Path, parity: str = "", passthrough=("id",)) -> Job:
    """``tests.support.write_job``, loaded."""
    return load_job(support.write_job(folder, input_path, bundle, parity, passthrough))
