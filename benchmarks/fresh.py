"""One command in a fresh process, measured from outside: start to exit, and everything it left.

The measuring process makes itself a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``), so
every process the command starts, including daemons that detach from it (Ray's raylet and GCS,
the JVM, Spark's Python workers), is re-parented to it when its own parent exits. It can then
wait for each of them: ``all_gone_seconds`` is when the last one exited, ``cpu_seconds`` is the
user and system CPU of the whole tree (``RUSAGE_CHILDREN`` counts every reaped descendant), and
``lingering`` names what was still alive ``linger`` seconds after the command exited (then
killed, so that one measurement never leaks into the next).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import tempfile
import time
from dataclasses import dataclass, field

from benchmarks.harness import run_child

PR_SET_CHILD_SUBREAPER = 36


@dataclass
class FreshRun:
    """What one command cost, seen from outside."""

    argv: list[str]
    returncode: int
    exit_seconds: float  # spawn to the command's own exit
    all_gone_seconds: float  # spawn to the exit of the last process it started
    cpu_seconds: float  # user + system CPU of every process in the tree
    stdout: str
    stderr: str
    lingering: list[str] = field(default_factory=list)  # "pid cmdline" alive `linger` s after exit
    load_average: float = 0.0

    def to_dict(self) -> dict:
        return {
            "argv": self.argv,
            "returncode": self.returncode,
            "exit_seconds": round(self.exit_seconds, 3),
            "all_gone_seconds": round(self.all_gone_seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "lingering": self.lingering,
            "load_average": round(self.load_average, 2),
        }


def become_subreaper() -> None:
    """Orphaned descendants of this process are re-parented to it (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _children(pid: int, zombies: bool = False) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and (zombies or fields[0] != "Z"):
            found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


def run_fresh(
    argv: list[str], env: dict[str, str] | None = None, linger: float = 30.0, timeout: float = 900.0
) -> FreshRun:
    """Runs ``argv`` to its end (``harness.run_child``) and waits up to ``linger`` seconds for
    everything it started.

    The caller must have called ``become_subreaper()`` once; otherwise detached daemons are not
    seen (they are re-parented to init) and ``cpu_seconds`` misses them.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = set(_children(os.getpid(), zombies=True))  # a server this process runs is not the command's
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        child = run_child(argv, out_file, err_file, env=env, timeout=timeout)
        exited = child.seconds
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    last_gone, lingering = exited, []
    deadline = time.perf_counter() + linger
    while left := [pid for pid in _children(os.getpid(), zombies=True) if pid not in ours]:
        for pid in left:  # what the command left, re-parented here: reap it once it exits
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    last_gone = time.perf_counter() - started
            except ChildProcessError:
                pass
        if time.perf_counter() > deadline:
            for pid in _children(os.getpid()):
                if pid not in ours:
                    lingering.append(f"{pid} {_cmdline(pid)}")
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            deadline = time.perf_counter() + 1.0  # what the killed ones left is killed next round
        time.sleep(0.02)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return FreshRun(
        list(argv),
        child.returncode,
        exited,
        last_gone,
        cpu,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        lingering,
        os.getloadavg()[0],
    )
