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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from common.errors import JobError
from common.spec.toml import parse_table

MARKER = "fault-fired"


class InjectedFault(RuntimeError):
    """The error a ``raise_*`` fault raises: to the harness it is an ordinary model error."""


@dataclass(frozen=True)
class FaultSpec:
    """A validated ``[faults]`` section with its marker folder resolved (hashable, picklable).

    Attributes:
        mode: ``raise_once``, ``raise_always``, ``kill_once`` or ``kill_always``.
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
        raise InjectedFault(
            f"injected fault ({self.mode}) in a batch holding {key_column} in {list(self.keys)}"
        )

    def check(self, key_type: pa.DataType, key_column: str, where: str) -> None:
        """On the driver, before any engine: the keys must fit the key column's type."""
        try:
            pa.array(self.keys).cast(key_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise JobError(
                f'{where}: key {list(self.keys)} does not fit key column "{key_column}" ({key_type})'
            ) from None

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


@dataclass(frozen=True)
class _FaultsTable:
    mode: Literal["raise_once", "raise_always", "kill_once", "kill_always"]
    key: int | float | str | tuple[int | float | str, ...]
    marker_dir: str = ""

    def check(self, where: str) -> None:
        if self.key == ():
            raise JobError(f'{where}: field "key" must be a number or string, or a non-empty list of them')


def parse_faults(section: Mapping[str, Any], where: str, base: Path) -> FaultSpec:
    """The ``[faults]`` section as a FaultSpec; a relative ``marker_dir`` resolves against ``base``."""
    table = parse_table(_FaultsTable, section, where)
    keys = table.key if isinstance(table.key, tuple) else (table.key,)
    marker_dir = str((base / table.marker_dir).resolve()) if table.marker_dir else ""
    return FaultSpec(mode=table.mode, keys=keys, marker_dir=marker_dir)


def job_faults(job, scratch: Path) -> FaultSpec | None:
    """The job's faults for one run; without a ``marker_dir`` the marker lives in the run's scratch folder."""
    spec = job.faults
    if spec is None or spec.marker_dir:
        return spec
    return replace(spec, marker_dir=str(scratch / "faults"))
