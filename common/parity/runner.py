"""``batch-predict parity``: the job on every backend and the reference, then one comparison.

Each run goes through ``run_job`` (same checks, same atomic output) into ``<out>/<backend>``. The
comparison names a referee, so every difference is attributed to the side that left it: the
reference executor, or, for a bundle imported from a Spark ML pipeline (``legacy_pipeline``), the
``legacy`` side running that original pipeline, today's output every other side must match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from common.parity.compare import compare_outputs
from common.parity.report import write_reports
from common.run.engines import EngineSession
from common.run.result import RunResult
from common.run.runner import run_job
from common.spec.backends import LEGACY, REFERENCE, engine_names
from common.spec.bundle import load_bundle
from common.spec.job import Job


def parity_sides(job: Job, backends: Sequence[str] | None = None) -> list[str]:
    """The sides to run: the reference, the given backends (every engine backend by default), and
    ``legacy`` when the job's bundle names a ``legacy_pipeline``."""
    sides = [REFERENCE, *[b for b in (backends or engine_names()) if b != REFERENCE]]
    if load_bundle(job.bundle_path).legacy_pipeline is not None and LEGACY not in sides:
        sides.append(LEGACY)
    return sides


def run_parity(
    job: Job,
    out_dir: Path,
    backends: Sequence[str] | None = None,
    *,
    progress: bool = False,
    engines: EngineSession | None = None,
) -> tuple:
    """Runs the job on each side under ``out_dir`` and compares them (``parity_sides``).

    Args:
        backends: the backends to check (every engine backend by default).
        progress: show each run's progress on stderr.
        engines: the engines of a sequence of jobs (``run_job``); each starts once for all of them.

    Returns:
        (report, report paths, run results by backend).
    """
    out_dir = Path(out_dir).resolve()
    runs: dict[str, RunResult] = {}
    for backend in parity_sides(job, backends):
        job_here = replace(job, output_path=out_dir / backend, overwrite=True)
        runs[backend] = run_job(job_here, backend, progress=progress, engines=engines)
    sides = {name: result.output for name, result in runs.items()}
    referee = LEGACY if LEGACY in runs else REFERENCE
    report = compare_outputs(sides, list(job.key), job.parity, reference=referee, work_dir=out_dir / "_work")
    report.compiled_sql = any(t.op == "sql" for t in load_bundle(job.bundle_path).transforms)
    paths = write_reports(report, out_dir)
    return report, paths, runs
