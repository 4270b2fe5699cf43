"""Fleet parity: ``batch-predict parity JOB [JOB ...] --report DIR`` over many jobs at once.

Each job's parity run (Spark, Ray and the reference, as for one job) goes into
``DIR/<job name>/`` with its ``parity.json`` and ``parity.html``, and writes the job's parity
certificate. ``DIR/fleet.json`` and ``DIR/index.html`` hold one row per job: verdict, rows, the
differing columns with counts, seconds and rows/s on each engine, the Ray/Spark speed-up and a link
to the job's report. One job's error is reported on its row and the others still run.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import EXIT_ERROR, EXIT_OK, EXIT_PARITY_FAILED, BatchPredictError
from common.parity.report import table_row
from common.parity.report_data import DIFFERS, WITHIN_TOLERANCE
from common.rollout.certificate import CERTIFIED_BACKENDS, ERROR, fingerprint, write_certificate
from common.rollout.fleet_html import render_fleet_html

FLEET_JSON, INDEX_HTML = "fleet.json", "index.html"


def certified_parity(
    job, out_dir: Path, backends: Sequence[str] = CERTIFIED_BACKENDS, *, progress: bool = False
):
    """``run_parity`` that also writes the job's parity certificate, for a pass, a failure or an
    error (re-raised). A run without both Spark and Ray certifies nothing and leaves the file alone.

    Returns:
        (report, report paths, run results by backend, certificate path or None).
    """
    from common.parity.runner import run_parity

    certify = all(b in backends for b in CERTIFIED_BACKENDS)
    current = fingerprint(job) if certify else None
    try:
        report, paths, runs = run_parity(job, out_dir, backends, progress=progress)
    except BatchPredictError as exc:
        if certify:
            write_certificate(job, current, error=str(exc))
        raise
    certificate = write_certificate(job, current, report=report, runs=runs) if certify else None
    return report, paths, runs, certificate


@dataclass
class FleetRow:
    """One job of the fleet, as ``fleet.json`` and ``index.html`` show it."""

    job: str
    job_file: str
    verdict: str
    rows: int | None = None
    differing_columns: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    engines: dict[str, dict[str, float]] = field(default_factory=dict)
    ray_speedup: float | None = None
    report: str | None = None
    certificate: str | None = None
    summaries: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class FleetResult:
    rows: list[FleetRow]
    paths: dict[str, Path]

    @property
    def exit_code(self) -> int:
        """2 when a job errored, else 1 when a job differs, else 0."""
        if any(r.verdict == ERROR for r in self.rows):
            return EXIT_ERROR
        return EXIT_PARITY_FAILED if any(r.verdict == DIFFERS for r in self.rows) else EXIT_OK

    def summary_lines(self) -> list[str]:
        """A table with one row per job (verdict, rows, seconds, speed-up, differing columns),
        then the path of the fleet report."""
        head = ("job", "verdict", "rows", "spark s", "ray s", "ray/spark")
        width = min(max([22, *(len(r.job) for r in self.rows)]), 48)  # job names wrap beyond 48
        layout = [(width, "<"), (17, "<"), (9, ">"), (8, ">"), (8, ">"), (9, ">")]
        lines = [table_row(head, layout) + "  differing"]
        for r in self.rows:
            detail = r.error or ", ".join(
                f"{d['column']} ({d['pair']}) {d['rows']:,}" if d["rows"] else f"{d['column']} {d['verdict']}"
                for d in r.differing_columns
            )
            rows = f"{r.rows:,}" if r.rows is not None else "-"
            seconds = [self._seconds_cell(r, b) for b in ("spark", "ray")]
            cells = [r.job, r.verdict, rows, *seconds, _ratio(r.ray_speedup)]
            first, *rest = table_row(cells, layout).split("\n")
            lines += [f"{first:<{sum(w for w, _ in layout) + len(layout) - 1}}  {detail or '-'}", *rest]
        if any(r.engines.get(b, {}).get("startup_seconds") for r in self.rows for b in ("spark", "ray")):
            lines.append(
                "* includes the engine's start (paid by the first job that needs it; later jobs reuse it)"
            )
        counts = {v: sum(r.verdict == v for r in self.rows) for v in (WITHIN_TOLERANCE, DIFFERS, ERROR)}
        lines.append(f"{len(self.rows)} jobs: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
        lines.append(f"fleet report: {self.paths['html']}")
        return lines

    @staticmethod
    def _seconds_cell(row: FleetRow, backend: str) -> str:
        engine = row.engines.get(backend, {})
        return _seconds(engine.get("seconds")) + ("*" if engine.get("startup_seconds") else "")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def run_fleet(
    job_files: Sequence[str | Path],
    report_dir: Path,
    backends: Sequence[str] = CERTIFIED_BACKENDS,
    *,
    progress: bool = False,
    on_job: Callable[[FleetRow], None] | None = None,
) -> FleetResult:
    """Runs parity for every job file into ``report_dir/<job name>/``, then writes the fleet pages.

    Args:
        on_job: called with each job's row as soon as it is done (``make demo`` prints it).
    """
    from common.spec.job import load_job

    report_dir = Path(report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    rows, taken = [], set()
    for job_file in job_files:
        try:
            job = load_job(job_file)
            name = _unique(job.name, Path(job_file).stem, taken)
        except BatchPredictError as exc:
            rows.append(
                FleetRow(_unique(Path(job_file).stem, "job", taken), str(job_file), ERROR, error=str(exc))
            )
        else:
            rows.append(_run_one(job, name, report_dir, backends, progress))
        if on_job is not None:
            on_job(rows[-1])
    paths = write_fleet(rows, report_dir)
    return FleetResult(rows, paths)


def _run_one(job, name: str, report_dir: Path, backends: Sequence[str], progress: bool) -> FleetRow:
    row = FleetRow(name, str(job.path), ERROR)
    try:
        report, paths, runs, certificate = certified_parity(
            job, report_dir / name, backends, progress=progress
        )
    except BatchPredictError as exc:
        row.error = str(exc)
        return row
    except Exception as exc:  # an engine failure of one job must not stop the fleet; shown on its row
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        row.error = f"{type(exc).__name__}: {last.splitlines()[0][:300]}"
        return row
    row.verdict = WITHIN_TOLERANCE if report.ok else DIFFERS
    row.rows = max((s.rows for s in report.sides), default=0)
    row.problems = report.problems()
    row.differing_columns = [
        {"column": c.name, "pair": p.name, "rows": c.unequal, "verdict": c.verdict}
        for p in report.pairs
        for c in p.columns
        if c.status != "compared" or c.unequal
    ]
    row.engines = {
        b: {
            "seconds": round(r.seconds, 3),
            "startup_seconds": round(r.startup_seconds, 3),
            "rows_per_second": round(r.rows_per_second, 1),
        }
        for b, r in runs.items()
    }
    if "spark" in runs and "ray" in runs and runs["ray"].seconds > 0:
        row.ray_speedup = round(runs["spark"].seconds / runs["ray"].seconds, 3)
    row.report = str(paths["html"].relative_to(report_dir))
    row.summaries = [r.summary() for r in runs.values()]
    row.certificate = str(certificate) if certificate else None
    return row


def _unique(name: str, fallback: str, taken: set[str]) -> str:
    """A folder name for the job: its name, else its file's stem, made unique in the fleet."""
    base = re.sub(r"[^\w.-]+", "_", name).strip("._") or re.sub(r"[^\w.-]+", "_", fallback) or "job"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def write_fleet(rows: list[FleetRow], report_dir: Path) -> dict[str, Path]:
    """Writes ``fleet.json`` and ``index.html`` into ``report_dir``; returns their paths."""
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    paths = {"json": report_dir / FLEET_JSON, "html": report_dir / INDEX_HTML}
    result = FleetResult(rows, paths)
    data = {
        "generated": generated,
        "exit_code": result.exit_code,
        "speedup": "ray_speedup = Spark seconds / Ray seconds for the whole run (above 1: Ray was faster)",
        "jobs": [asdict(r) for r in rows],
    }
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    paths["html"].write_text(render_fleet_html(rows, generated), encoding="utf-8")
    return paths
