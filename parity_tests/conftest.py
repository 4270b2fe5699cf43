"""The parity suite is written once and parametrised over backends (the Ibis / Fugue way).

Each test takes the ``backend`` fixture and checks that backend against the single-process
reference executor; engines start once per session (root conftest).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from common.compare import compare_outputs
from common.job import Job, load_job
from common.parity_settings import parse_parity_settings
from common.report import format_summary
from common.runner import run_job

BACKENDS = [pytest.param("spark", marks=pytest.mark.spark), pytest.param("ray", marks=pytest.mark.ray)]


@pytest.fixture(params=BACKENDS)
def backend(request, engines) -> str:
    return request.param


def run_against_reference(job: Job, backend: str, out: Path, reference_out: Path | None = None):
    """Runs ``job`` on ``backend`` and on the reference (unless given) and compares them."""
    if reference_out is None:
        reference_out = out / "reference"
        run_job(replace(job, output_path=reference_out, overwrite=True), "reference")
    run_job(replace(job, output_path=out / backend, overwrite=True), backend)
    settings = parse_parity_settings(job.section("parity"), "[parity]")
    report = compare_outputs({backend: out / backend, "reference": reference_out}, list(job.key), settings,
                             reference="reference", work_dir=out / "_work")
    return report


def assert_parity(report) -> None:
    assert report.ok, "\n" + format_summary(report)


def write_job(folder: Path, input_path: Path, bundle: Path, parity: str = "", passthrough=("id",)) -> Job:
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""
[job]
key = "id"
[input]
path = "{input_path}"
[output]
path = "out"
passthrough = {list(passthrough)!r}
[model]
bundle = "{bundle}"
[ray]
concurrency = 1
[parity]
{parity}
"""
    (folder / "job.toml").write_text(text.replace("'", '"'))
    return load_job(folder / "job.toml")
