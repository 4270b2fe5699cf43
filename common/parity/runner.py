"""``batch-predict parity``: the job on Spark, Ray and the reference, then a three-way comparison.

Each run goes through ``run_job`` (same checks, same atomic output) into ``<out>/<backend>``; the
comparison names the reference, so every difference is attributed to the side that left it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from common.parity.compare import compare_outputs
from common.parity.report import write_reports
from common.run.backends import REFERENCE, engine_names
from common.run.engines import EngineSession
from common.run.result import RunResult
from common.run.runner import run_job
from common.spec.bundle import load_bundle
from common.spec.job import Job


def run_parity(
    job: Job,
    out_dir: Path,
    backends: Sequence[str] | None = None,
    *,
    progress: bool = False,
    engines: EngineSession | None = None,
) -> tuple:
    """Runs the job on each backend and the reference under ``out_dir`` and compares them.

    Args:
        backends: the backends to check (every engine backend by default).
        progress: show each run's progress on stderr.
        engines: the engines of a sequence of jobs (``run_job``); each starts once for all of them.

    Returns:
        (report, report paths, run results by backend).
    """
    settings = job.parity
    out_dir = Path(out_dir).resolve()
    runs: dict[str, RunResult] = {}
    for backend in [REFERENCE, *[b for b in (backends or engine_names()) if b != REFERENCE]]:
        job_here = replace(job, output_path=out_dir / backend, overwrite=True)
        runs[backend] = run_job(job_here, backend, progress=progress, engines=engines)
    sides = {name: result.output for name, result in runs.items()}
    report = compare_outputs(sides, list(job.key), settings, reference=REFERENCE, work_dir=out_dir / "_work")
    report.compiled_sql = any(t.op == "sql" for t in load_bundle(job.bundle_path).transforms)
    paths = write_reports(report, out_dir)
    return report, paths, runs
