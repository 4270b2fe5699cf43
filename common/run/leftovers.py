"""Finding and stopping the processes a CLI run started, even after its driver was SIGKILLed.

Every process a run starts (the JVM and Spark's Python workers; Ray's GCS, raylet, agents and
workers) inherits the driver's environment, whatever session or process group it moves to, and
an environment cannot be changed from outside. So the CLI puts a tag (``TAG_VAR``) in its own
environment before it starts anything, and leaves a marker file naming the tag and its own pid
and start time in a folder of this user's (``MARKERS``):

- when it stops its engines, anything with its tag still alive (Ray's dashboard and runtime-env
  agents outlive ``ray.shutdown()`` by seconds) is stopped too, and the marker removed;
- a driver killed with SIGKILL cannot do that: the next CLI run finds the marker of a driver that
  is gone and stops what carries its tag (Ray's agents lived on for two minutes, its GCS and
  raylet until the machine restarted) before it starts anything of its own.

Processes of a driver still alive are never touched, nor an engine a run only connected to (a
Ray cluster, a Spark Connect server: they are not its descendants and do not carry its tag).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

from common.run.signals import signals_held

TAG_VAR = "BATCH_PREDICT_RUN_TAG"
MARKERS = Path(tempfile.gettempdir()) / f"batch-predict-{os.getuid()}" / "runs"
STOP_WAIT_S = 1.5


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (with the pid, it names one process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class RunTag:
    """This run's tag, in its environment and in a marker file, for as long as it is open."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex
        self.marker = MARKERS / f"{self.tag}.json"
        self._previous: str | None = None

    def __enter__(self) -> RunTag:
        self._previous = os.environ.get(TAG_VAR)
        os.environ[TAG_VAR] = self.tag
        try:
            MARKERS.mkdir(parents=True, exist_ok=True)
            record = {"pid": os.getpid(), "start": _start_time(os.getpid())}
            self.marker.write_text(json.dumps(record))
        except OSError:  # no marker: a SIGKILL of this run then leaves its engine running, as before
            pass
        return self

    def __exit__(self, *exc) -> None:
        with signals_held():
            stop_tagged(self.tag)
        if self._previous is None:
            os.environ.pop(TAG_VAR, None)
        else:
            os.environ[TAG_VAR] = self._previous
        self.marker.unlink(missing_ok=True)


def tagged(tag: str) -> list[int]:
    """Live processes (not zombies, not this one) whose environment holds ``TAG_VAR=tag``."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            if "\nState:\tZ" in Path(f"/proc/{entry}/status").read_text():
                continue
        except OSError:  # gone meanwhile, or another user's
            continue
        found.append(int(entry))
    return found


def stop_tagged(tag: str, wait: float = STOP_WAIT_S) -> list[int]:
    """SIGTERM to every process tagged ``tag``, SIGKILL to those still alive after ``wait``
    seconds; returns the pids that were found."""
    pids = tagged(tag)
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while (alive := [p for p in pids if p in tagged(tag)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal(alive, signal.SIGKILL)
    return pids


def reap_dead_runs() -> list[int]:
    """Stops what runs whose driver is gone left running; returns those processes' pids."""
    stopped = []
    try:
        markers = list(MARKERS.glob("*.json"))
    except OSError:
        return stopped
    for marker in markers:
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if record.get("start") is not None and _start_time(int(record["pid"])) == record["start"]:
            continue  # its driver is alive: its engine is its own business
        stopped += stop_tagged(marker.stem)
        marker.unlink(missing_ok=True)
    return stopped


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
