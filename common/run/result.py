"""What a run reports: the engine's part (``EngineRun``) and the whole job's (``RunResult``)."""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class EngineRun:
    """Returned by a backend's ``run``: how long its engine took to start and where it ran."""

    startup_seconds: float
    device: str
    details: dict = field(default_factory=dict)


@dataclass
class RunResult:
    """One job run, as printed in the summary line and written to ``_manifest.json``.

    Attributes:
        seconds: the whole run, checks and publishing included.
        startup_seconds: the engine's own start (0 when it was already running).
        engine_seconds: the backend's ``run`` alone: starting the engine, reading, predicting and
            writing; the rest of ``seconds`` is the runner's checks, reconciliation and publishing.
        notes: what the summary adds after the reconciliation: why ``auto`` chose the backend,
            how many chunks a resumed run found done.
    """

    backend: str
    rows_in: int
    rows_out: int
    seconds: float
    startup_seconds: float
    engine_seconds: float
    device: str
    output: Path
    dead_letter_rows: int = 0
    notes: tuple[str, ...] = ()

    @property
    def rows_per_second(self) -> float:
        work = self.seconds - self.startup_seconds
        return self.rows_out / work if work > 0 else 0.0

    def summary(self) -> str:
        dead = f", {self.dead_letter_rows} dead-lettered" if self.dead_letter_rows else ""
        return (
            f"{self.backend}: rows in {self.rows_in}, rows out {self.rows_out}{dead}, "
            f"{self.seconds:.2f} s (startup {self.startup_seconds:.2f} s), "
            f"{self.rows_per_second:,.0f} rows/s, device {self.device} -> {self.output}; "
            f"{self.reconciliation()}" + "".join(f"; {note}" for note in self.notes)
        )

    def reconciliation(self) -> str:
        """What the runner checked key by key before publishing: every input row out exactly once."""
        return f"reconciled: {self.rows_in} in = {self.rows_out} out (+{self.dead_letter_rows} dead-lettered)"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["output"] = str(self.output)
        data["rows_per_second"] = self.rows_per_second
        return data


_NOTED: set[str] = set()


def note_device(folder: str | None, device: str) -> None:
    """Records where this worker process's model runs, once per process and run (a file in the
    run's scratch folder). Only a worker knows: a cluster's driver may have no GPU, and a Ray GPU
    reservation is a promise of the resource, not proof that torch found CUDA there."""
    if folder is None or folder in _NOTED:
        return
    with contextlib.suppress(OSError):  # bookkeeping only: the driver then reports its own guess
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{socket.gethostname()}-{os.getpid()}.device").write_text(device)
        _NOTED.add(folder)


def noted_devices(folder: Path, fallback: str) -> str:
    """The devices the workers noted ("cpu", "cuda", "cpu,cuda:0"), or ``fallback`` when none did
    (no batch reached a worker, or the folder is not shared with the driver)."""
    try:
        found = sorted({f.read_text() for f in Path(folder).glob("*.device")})
    except OSError:
        found = []
    return ",".join(found) or fallback
