"""``batch-predict`` with a phase trace: ``python -m benchmarks.tracecli TRACE.jsonl run JOB --backend B``.

Runs the CLI exactly as ``batch-predict`` does, and appends one JSON line per phase boundary to
TRACE.jsonl: the phase, seconds since the parent spawned this process (``$PHASES_SPAWNED_AT``,
a ``time.time()``), and the CPU seconds of this process and of its whole process tree so far.
The boundaries are the runner's and the executors' own functions, wrapped here from outside, so
the traced run is the product's code path; the process's exit is measured by the parent.
"""

from __future__ import annotations

import os
import sys
import time

SPAWNED_AT = float(os.environ.get("PHASES_SPAWNED_AT") or time.time())
_TICKS = os.sysconf("SC_CLK_TCK")
_LINES: list[str] = []


def tree_cpu_seconds() -> float:
    """User + system CPU of this process, its reaped children and every live descendant."""
    children: dict[int, list[tuple[int, list[str]]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append((int(entry), fields))
    with open("/proc/self/stat", "rb") as handle:
        mine = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
    total = sum(int(v) for v in mine[11:15])
    stack = [os.getpid()]
    while stack:
        for pid, fields in children.get(stack.pop(), []):
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
            stack.append(pid)
    return total / _TICKS


def mark(event: str) -> None:
    import json

    _LINES.append(
        json.dumps(
            {
                "event": event,
                "wall": round(time.time() - SPAWNED_AT, 4),
                "cpu": round(time.process_time(), 3),
                "tree_cpu": round(tree_cpu_seconds(), 3),
            }
        )
    )


def _wrap(owner, attr: str, phase: str) -> None:
    original = getattr(owner, attr)

    def traced(*args, **kwargs):
        mark(f"start {phase}")
        try:
            return original(*args, **kwargs)
        finally:
            mark(f"end {phase}")

    setattr(owner, attr, traced)


def install(backend: str) -> None:
    """Wraps the runner's phases and the backend's stages."""
    from common.run import runner
    from common.run.engines import EngineSession

    mark("imported")
    _wrap(EngineSession, "close", "stop engines")
    for attr, phase in (
        ("prepare", "input checks"),
        ("preflight", "preflight"),
        ("reconcile", "reconcile"),
        ("finish_output", "publish"),
    ):
        _wrap(runner, attr, phase)
    if backend == "ray":
        import ray.data

        import ray_backend.engine as engine

        _wrap(engine, "start", "engine start")
        _wrap(ray.data.Dataset, "write_parquet", "engine: read, predict, write")
    elif backend == "spark":
        from pyspark.sql.readwriter import DataFrameWriter

        import spark_backend.engine as engine
        import spark_backend.reading as reading

        _wrap(engine, "start", "engine start")
        _wrap(reading, "read_input", "engine: plan the read")
        _wrap(DataFrameWriter, "parquet", "engine: read, predict, write")


def main() -> int:
    trace_path, argv = sys.argv[1], sys.argv[2:]
    mark("interpreter started")
    backend = (
        argv[argv.index("--backend") + 1]
        if "--backend" in argv
        else os.environ.get("BATCH_PREDICT_BACKEND", "")
    )
    from common import cli

    install(backend)
    try:
        return cli.main(argv)
    finally:
        mark("main returned")
        with open(trace_path, "a") as handle:
            handle.write("\n".join(_LINES) + "\n")


if __name__ == "__main__":
    sys.exit(main())
