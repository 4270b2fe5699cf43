"""What every benchmark shares: one child-process runner, one ``Target``, one Markdown writer and
one machine and version record.

The throughput trials (``benchmarks.run`` -> ``benchmarks.trial``), the phase trace
(``benchmarks.phases``) and the GPU check (``benchmarks.gpu_check``) all start their measured
commands with ``run_child``, state their goals as ``Target`` values (``benchmarks.targets``),
write ``results.md``/``phases.md`` with ``table`` and ``targets_lines``, and record the machine
with ``machine_record``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
VERSIONED = ("pyspark", "ray", "torch", "pyarrow", "pandas", "scikit-learn", "numpy", "pytest-benchmark")

# --- the child-process runner ---------------------------------------------------------------------


def child_env(hide_gpus: bool = False, **extra: str) -> dict[str, str]:
    """This environment for a measured command: this checkout first on ``PYTHONPATH``, Spark's
    workers on this interpreter, no ``RAY_ADDRESS`` (each run starts its own local Ray, unless a
    warm engine's ``extra`` names one), and with ``hide_gpus`` no CUDA device for torch or Ray."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "BATCH_PREDICT_BACKEND")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    if hide_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(extra)
    return env


@dataclass(frozen=True)
class ChildRun:
    """How one command ended: its exit status (negative: killed by that signal), its wall seconds
    from spawn to exit, and whether it ran past its timeout."""

    returncode: int
    seconds: float
    timed_out: bool


def run_child(
    argv: Sequence[str],
    stdout,
    stderr=subprocess.STDOUT,
    env: dict[str, str] | None = None,
    timeout: float = 3600.0,
) -> ChildRun:
    """Runs ``argv`` in the repository, in a session of its own, to its exit.

    ``stdout``/``stderr`` are open files, not pipes: a daemon that inherits a pipe would hold it
    open, and the command would seem to run until the daemon exits. Past ``timeout`` seconds the
    whole session is killed (the JVM, Ray and pool processes the command started).
    """
    started = time.perf_counter()
    child = subprocess.Popen(
        list(argv),
        cwd=REPO,
        env=child_env() if env is None else env,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    timed_out = False
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()
    return ChildRun(child.returncode, time.perf_counter() - started, timed_out)


def last_line(log: Path) -> str:
    """The last line of a log file (why a command failed), or ``(no output)``."""
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1] if lines else "(no output)"


# --- targets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One goal and how the run did against it. ``detail`` says the value, by how much it is
    missed, and what it was measured on; ``results.json`` keeps it as ``asdict``."""

    target: str
    value: float
    threshold: float
    met: bool
    detail: str

    @classmethod
    def at_least(cls, name: str, value: float, threshold: float, note: str = "") -> Target:
        """A ratio that must reach ``threshold``: ``1.23x, 12% short of 1.4x (note)``."""
        met = value >= threshold
        short = "" if met else f", {1 - value / threshold:.0%} short of {threshold:g}x"
        return cls(name, round(value, 3), threshold, met, f"{value:.2f}x{short}{note}")

    @classmethod
    def at_most(cls, name: str, value: float, threshold: float, detail: str) -> Target:
        return cls(name, round(value, 3), threshold, value <= threshold, detail)

    def to_dict(self) -> dict:
        return asdict(self)


# --- the machine and version record ----------------------------------------------------------------


def machine_info() -> dict:
    """CPU model, cores, memory, the CUDA device torch sees (or None) and the platform."""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "gpu": gpu,
        "device": f"cuda ({gpu})" if gpu else "cpu (no CUDA device)",
        "platform": platform.platform(),
    }


def versions() -> dict:
    """Python, the libraries that decide the numbers (None where not installed), the git commit."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    try:
        git = ["git", "-C", str(REPO)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
        found["commit"] = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        found["commit"] = None
    return found


def machine_record() -> dict:
    """``{"machine": ..., "versions": ...}``, the part of every results file's ``meta`` that says
    where and with what it was measured."""
    return {"machine": machine_info(), "versions": versions()}


def machine_line(meta: dict) -> str:
    """One Markdown sentence from ``meta``'s machine record."""
    machine, found = meta["machine"], meta.get("versions") or {}
    libraries = ", ".join(f"{n} {found[n]}" for n in ("torch", "ray", "pyspark") if found.get(n))
    return (
        f"Machine: {machine['cpu_model']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB; device: "
        f"{machine['device']}. {libraries}, commit {found.get('commit')}."
    )


# --- the Markdown writer ---------------------------------------------------------------------------


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], numeric: Iterable[str] = ()) -> list[str]:
    """A Markdown table; the ``numeric`` columns are right-aligned, ``None`` cells are empty and a
    ``|`` inside a cell is written ``/``."""
    right = set(numeric)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if c in right else "---" for c in columns) + "|",
    ]
    for row in rows:
        cells = ["" if cell is None else str(cell).replace("|", "/") for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets_lines(targets: Iterable[dict]) -> list[str]:
    """One line per target: met or **MISSED**, its name and its detail."""
    return [f"- {'met' if t['met'] else '**MISSED**'}: {t['target']}: {t['detail']}" for t in targets]


def number(value: float | None, fmt: str, missing: str = "") -> str:
    """``format(value, fmt)``, or ``missing`` for None."""
    return missing if value is None else format(value, fmt)
