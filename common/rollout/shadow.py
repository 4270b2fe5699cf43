"""Shadow runs: ``run JOB --backend spark --shadow ray`` publishes the primary output exactly as
a plain run would, then runs the shadow backend into ``<output>.shadow-<backend>/``, compares the
two with the job's ``[parity]`` tolerances and writes ``parity.json`` / ``parity.html`` into
``<output>.shadow-<backend>.report/``. The shadow never fails the primary: its verdict is one more
summary line, and it changes the exit code only with ``--shadow-strict``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from common.errors import EXIT_ERROR, EXIT_OK, EXIT_PARITY_FAILED, BatchPredictError
from common.parity.report_data import BIT_IDENTICAL, DIFFERS, WITHIN_TOLERANCE


def shadow_paths(output: Path, backend: str) -> tuple[Path, Path]:
    """(shadow output, report folder) beside the primary ``output``."""
    shadow = output.with_name(f"{output.name}.shadow-{backend}")
    return shadow, shadow.with_name(shadow.name + ".report")


@dataclass(frozen=True)
class ShadowResult:
    """The shadow's verdict as one summary line, and the exit code it stands for."""

    backend: str
    line: str
    exit_code: int


def run_shadow(job, primary, backend: str) -> ShadowResult:
    """Runs ``job`` on ``backend`` beside the published ``primary`` (a RunResult) and compares them.

    Any failure of the shadow, its engine's included, becomes its verdict line: the primary's
    output is already published and stays as it is.
    """
    from common.parity.compare import compare_outputs
    from common.parity.report import write_reports
    from common.run.runner import run_job

    if backend == primary.backend:
        return ShadowResult(backend, f"shadow {backend}: skipped, the primary ran on {backend}", EXIT_OK)
    shadow_out, report_dir = shadow_paths(job.output_path, backend)
    try:
        shadow = run_job(replace(job, output_path=shadow_out, overwrite=True), backend)
        report = compare_outputs(
            {primary.backend: primary.output, backend: shadow.output},
            list(job.key),
            job.parity,
            work_dir=shadow_out.parent,
        )
        paths = write_reports(report, report_dir)
    except BatchPredictError as exc:
        return ShadowResult(backend, f"shadow {backend}: error: {exc}", EXIT_ERROR)
    except Exception as exc:  # the shadow's engine failed: still only the shadow's verdict
        last = traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0][:300]
        return ShadowResult(backend, f"shadow {backend}: error: {last}", EXIT_ERROR)
    pair = report.pairs[0]
    if report.ok:
        exact = all(c.bit_identical for c in pair.columns if c.status == "compared")
        verdict = BIT_IDENTICAL if exact else WITHIN_TOLERANCE
        return ShadowResult(
            backend,
            f"shadow {backend}: {verdict} with {primary.backend} ({pair.matched:,} rows compared, "
            f"{shadow.seconds:.2f} s) -> {shadow_out}; report {paths['html']}",
            EXIT_OK,
        )
    problems = report.problems()
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return ShadowResult(
        backend,
        f"shadow {backend}: {DIFFERS}: {problems[0]}{more} -> {shadow_out}; report {paths['html']}",
        EXIT_PARITY_FAILED,
    )
