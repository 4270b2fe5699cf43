"""Fault injection, a testing hook: make the batch holding a given key raise or kill its worker.

It proves the retry, dead-letter and atomic-output guarantees on real engines. It is set in the
job file, because environment variables never reach Spark or Ray workers that are already running::

    [faults]                  # testing only: never in a production job
    mode = "kill_once"        # raise_once | raise_always | kill_once | kill_always
    key = 123                 # the batch holding this key value (or any of a list) is hit
    marker_dir = "markers"    # optional; where "once" is remembered (default: per run, beside the output)

``raise_*`` raises ``InjectedFault`` (a model error, as if the model had raised); ``kill_*`` kills the
worker process with SIGKILL (a lost executor or replica). ``*_once`` fires for the first batch that
holds the key, across every process of the run: the first worker to create the marker file
(``O_CREAT | O_EXCL``, atomic on a local or POSIX file system) fires, all later attempts see it and
predict normally. With the default marker folder "once" means once per run; a ``marker_dir`` of your
own makes it once for as long as that folder keeps the marker. Every worker must see the folder.
The faults apply where executors predict (``Predictor.run_batch``), never in the driver's preflight.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from common.errors import JobError

MODES = ("raise_once", "raise_always", "kill_once", "kill_always")
_FIELDS = ("mode", "key", "marker_dir")
MARKER = "fault-fired"


class InjectedFault(RuntimeError):
    """The error a ``raise_*`` fault raises: to the harness it is an ordinary model error."""


@dataclass(frozen=True)
class FaultSpec:
    """A validated ``[faults]`` section with its marker folder resolved (hashable, picklable).

    Attributes:
        mode: one of ``MODES``.
        keys: values of the job's (first) key column; a batch holding any of them is hit.
        marker_dir: the folder of the "once" marker.
    """

    mode: str
    keys: tuple
    marker_dir: str = ""

    def apply(self, table: pa.Table, key_column: str) -> None:
        """Raises or kills this process when ``table`` holds one of the keys (and "once" allows it)."""
        if table.num_rows == 0 or key_column not in table.column_names:
            return
        column = table.column(key_column)
        wanted = pa.array(self.keys).cast(column.type)  # checked on the driver (``check``)
        if not pc.any(pc.is_in(column, value_set=wanted)).as_py():
            return
        if self.mode.endswith("_once") and not self._claim():
            return
        if self.mode.startswith("kill"):
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault ({self.mode}) in a batch holding {key_column} in {list(self.keys)}")

    def check(self, key_type: pa.DataType, key_column: str, where: str) -> None:
        """On the driver, before any engine: the keys must fit the key column's type."""
        try:
            pa.array(self.keys).cast(key_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise JobError(f'{where}: key {list(self.keys)} does not fit key column "{key_column}" ({key_type})') from None

    def fired(self) -> bool:
        """Whether a "once" fault has fired (its marker exists)."""
        return (Path(self.marker_dir) / MARKER).exists()

    def _claim(self) -> bool:
        """True for exactly one caller across processes: the one that creates the marker file."""
        folder = Path(self.marker_dir)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        os.close(fd)
        return True


def parse_faults(section: Mapping[str, Any], where: str, base: Path | None = None) -> FaultSpec | None:
    """The ``[faults]`` section as a FaultSpec (marker folder not yet resolved), or None when absent."""
    if not section:
        return None
    unknown = sorted(set(section) - set(_FIELDS))
    if unknown:
        raise JobError(f'{where}: unknown field "{unknown[0]}"; valid: {", ".join(_FIELDS)}')
    mode = section.get("mode")
    if mode not in MODES:
        raise JobError(f'{where}: mode {mode!r} is not one of {", ".join(MODES)}')
    if "key" not in section:
        raise JobError(f'{where}: missing field "key" (the key value whose batch is hit)')
    keys = section["key"] if isinstance(section["key"], list) else [section["key"]]
    if not keys or not all(isinstance(k, (int, float, str)) and not isinstance(k, bool) for k in keys):
        raise JobError(f"{where}: key must be a number or string, or a non-empty list of them")
    marker_dir = section.get("marker_dir", "")
    if not isinstance(marker_dir, str):
        raise JobError(f"{where}: marker_dir must be a folder path")
    if marker_dir and base is not None:
        marker_dir = str((base / marker_dir).resolve())
    return FaultSpec(mode=mode, keys=tuple(keys), marker_dir=marker_dir)


def job_faults(job, scratch: Path) -> FaultSpec | None:
    """The job's faults for one run; without a ``marker_dir`` the marker lives in the run's scratch folder."""
    spec = parse_faults(job.section("faults"), f"{job.path}: [faults]", job.path.parent)
    if spec is None or spec.marker_dir:
        return spec
    return FaultSpec(mode=spec.mode, keys=spec.keys, marker_dir=str(scratch / "faults"))
