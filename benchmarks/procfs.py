"""Memory and CPU of a process tree, read from Linux ``/proc`` (psutil is not a dependency).

The driver's peak is the kernel's own high-water mark (``VmHWM``), reset before each run by
writing ``5`` to ``/proc/self/clear_refs``. Workers (Spark's JVM and Python workers, Ray's
raylet, GCS and worker processes, the ceiling's pool) are every descendant of the driver; a
background thread sums their proportional set size (``Pss`` in ``smaps_rollup``: shared pages,
such as forked workers' copies of torch or Ray's object store, count once in the total) a few
times a second and keeps the peak, and the CPU seconds of every process it has seen.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIB_PER_MIB = 1024
RAY_SYSTEM_COMMS = (
    "raylet",
    "gcs_server",
    "ray::DashboardA",
    "ray::RuntimeEnv",
)  # comm is cut at 15 characters
RAY_SYSTEM_SCRIPTS = ("dashboard.py", "log_monitor.py", "monitor.py", "agent.py")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:  # the process exited between listing and reading
        return None


def _stat_fields(pid: int) -> list[str] | None:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    return text.rsplit(")", 1)[1].split()  # the name (field 2) may hold spaces and parentheses


def stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group, start time in clock ticks) of ``pid``; None when it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[1]), int(fields[2]), int(fields[19]))


def process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> ``stat(pid)`` for every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := stat(int(entry))) is not None:
            table[int(entry)] = info
    return table


def parents() -> dict[int, int]:
    """pid -> parent pid for every process on the machine."""
    return {pid: info[0] for pid, info in process_table().items()}


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, grandchildren, ...), not ``root`` itself."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        children.setdefault(ppid, []).append(pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def status_kib(pid: int | str, name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``), or None."""
    text = _read(f"/proc/{pid}/status")
    for line in (text or "").splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


def pss_kib(pid: int) -> int | None:
    """Proportional set size in KiB (falls back to RSS where ``smaps_rollup`` is unreadable)."""
    text = _read(f"/proc/{pid}/smaps_rollup")
    for line in (text or "").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return status_kib(pid, "VmRSS")


def cpu_seconds(pid: int | str) -> tuple[float, str] | None:
    """(user + system CPU seconds of ``pid`` itself, its start time as an identity), or None."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, fields[19]


def reset_peak() -> bool:
    """Resets this process's ``VmHWM`` to its current RSS (Linux 4.0+); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def process_kind(pid: int) -> str:
    """``jvm``, ``ray-system`` (raylet, GCS, dashboard, agents, monitors), ``python`` (Spark's Python
    workers, Ray's workers and actors, the ceiling's pool) or ``other``, for the breakdowns.

    Not cached: a launcher script becomes the JVM by ``exec``, and a Ray worker renames itself.
    """
    comm = (_read(f"/proc/{pid}/comm") or "").strip()
    if comm == "java":
        return "jvm"
    if comm in RAY_SYSTEM_COMMS or comm.startswith(RAY_SYSTEM_COMMS):
        return "ray-system"
    if comm.startswith("ray::"):
        return "python"
    argv = (_read(f"/proc/{pid}/cmdline") or "").split("\0")
    if any(arg.endswith(RAY_SYSTEM_SCRIPTS) for arg in argv[:3]):
        return "ray-system"
    return "python" if comm.startswith("python") or Path(argv[0]).name.startswith("python") else "other"


@dataclass
class TreePeak:
    """The largest sampled total of the workers' memory, and its make-up at that moment."""

    total_kib: int = 0
    by_kind_kib: dict[str, int] = field(default_factory=dict)
    processes: int = 0
    samples: int = 0


class TreeSampler:
    """Samples the memory and CPU of ``root`` and every descendant on a background thread.

    ``mark()`` starts a new measurement window and returns the previous window's memory peak;
    ``cpu_by_kind()`` is the CPU used so far by every process seen in the tree, dead ones
    included at their last sample (processes that live less than one interval are missed).
    """

    def __init__(self, root: int | None = None, interval: float = 0.5):
        self.root = root or os.getpid()
        self.interval = interval
        self._peak = TreePeak()
        self._cpu: dict[tuple[int, str], tuple[str, float]] = {}  # (pid, start time) -> (kind, seconds)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        by_kind: dict[str, int] = {}
        pids = descendants(self.root)
        cpu = {}
        for pid in [self.root, *pids]:
            used = cpu_seconds(pid)
            if used is None:
                continue
            kind = "driver" if pid == self.root else process_kind(pid)
            cpu[(pid, used[1])] = (kind, used[0])
            if pid != self.root:
                kib = pss_kib(pid)
                if kib is not None:
                    by_kind[kind] = by_kind.get(kind, 0) + kib
        total = sum(by_kind.values())
        with self._lock:
            self._cpu.update(cpu)
            self._peak.samples += 1
            if total > self._peak.total_kib:
                self._peak.total_kib, self._peak.by_kind_kib, self._peak.processes = total, by_kind, len(pids)

    def mark(self) -> TreePeak:
        self.sample()
        with self._lock:
            peak, self._peak = self._peak, TreePeak()
        return peak

    def cpu_by_kind(self) -> dict[str, float]:
        with self._lock:
            totals: dict[str, float] = {}
            for kind, seconds in self._cpu.values():
                totals[kind] = totals.get(kind, 0.0) + seconds
        return totals

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))
