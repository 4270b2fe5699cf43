"""What counts as "the same prediction": tolerances and report options for the parity check.

The settings come from the job file's ``[parity]`` section over the bundle's ``[parity]``
defaults, read with the job (``common.spec.job``); ``common.parity`` compares by them. Tolerances
apply to float columns (and the float elements of list columns) only; integers, strings, booleans,
dates and timestamps are always compared exactly, so a tolerance named for such a column is an
error rather than a silently ignored setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from common.errors import JobError
from common.spec.toml import parse_table

_TOLERANCE_KEYS = ("abs", "rel", "ulps")


@dataclass(frozen=True)
class Tolerance:
    """How far two floats may drift and still be called equal.

    A pair is equal when ANY criterion holds: ``|a-b| <= abs``, ``|a-b| <= rel*max(|a|,|b|)``
    or their ULP distance is ``<= ulps`` (``ulps=0`` disables the ULP criterion, which then
    adds nothing beyond exact equality). Bit-identical values are always equal; NaN equals NaN;
    an infinity equals only itself whatever the tolerance.
    """

    abs: float = 0.0
    rel: float = 0.0
    ulps: int = 0

    def __post_init__(self) -> None:
        for name in ("abs", "rel"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise ValueError(f"Tolerance.{name} must be a number, got {value!r}")
            if math.isnan(value) or value < 0:
                raise ValueError(f"Tolerance.{name} must be >= 0, got {value!r}")
        if isinstance(self.ulps, bool) or not isinstance(self.ulps, int) or self.ulps < 0:
            raise ValueError(f"Tolerance.ulps must be an integer >= 0, got {self.ulps!r}")

    @property
    def exact(self) -> bool:
        """True when only exact equality (or NaN==NaN) passes."""
        return self.abs == 0 and self.rel == 0 and self.ulps == 0

    def describe(self) -> str:
        """Short text such as ``abs=1e-09 ulps=4`` (``exact`` when nothing is allowed)."""
        if self.exact:
            return "exact"
        parts = [f"{n}={getattr(self, n):g}" for n in _TOLERANCE_KEYS if getattr(self, n)]
        return " ".join(parts)


@dataclass(frozen=True)
class ParitySettings:
    """Options of one parity check.

    Attributes:
        default: Tolerance of float columns without an override.
        columns: Per-column tolerance overrides (float or list-of-float columns only).
        sample_size: How many unequal rows (and key examples) the report shows per pair.
        score_columns: Float columns that get distribution figures; None means every float column.
        label_columns: Columns whose values are decisions; the report gives their flip share.
        threshold: Decision threshold applied to score columns to count flipped decisions.
        strict_types: Fail on a type-only difference (e.g. float32 vs float64), which is
            otherwise reported but compared after normalising.
        certificate_dir: Where ``batch-predict parity`` keeps the job's certificate, relative to
            the job's folder (``common.rollout.certificate``); None: beside the job file.
    """

    default: Tolerance = Tolerance()
    columns: Mapping[str, Tolerance] = field(default_factory=dict)
    sample_size: int = 10
    score_columns: tuple[str, ...] | None = None
    label_columns: tuple[str, ...] = ()
    threshold: float = 0.5
    strict_types: bool = False
    certificate_dir: str | None = None

    def __post_init__(self) -> None:
        # Freeze the mapping and accept lists so a settings object cannot change under a run.
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))
        if self.score_columns is not None:
            object.__setattr__(self, "score_columns", tuple(self.score_columns))
        object.__setattr__(self, "label_columns", tuple(self.label_columns))
        if isinstance(self.sample_size, bool) or not isinstance(self.sample_size, int):
            raise ValueError(f"sample_size must be an integer, got {self.sample_size!r}")
        if self.sample_size < 0:
            raise ValueError(f"sample_size must be >= 0, got {self.sample_size!r}")

    def tolerance_for(self, column: str) -> Tolerance:
        """The tolerance that applies to ``column`` (its override, else the default)."""
        return self.columns.get(column, self.default)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as written into ``parity.json``."""
        return {
            "default": _tolerance_dict(self.default),
            "columns": {name: _tolerance_dict(tol) for name, tol in self.columns.items()},
            "sample_size": self.sample_size,
            "score_columns": None if self.score_columns is None else list(self.score_columns),
            "label_columns": list(self.label_columns),
            "threshold": self.threshold,
            "strict_types": self.strict_types,
            "certificate_dir": self.certificate_dir,
        }


def _tolerance_dict(tol: Tolerance) -> dict[str, float | int]:
    return {"abs": tol.abs, "rel": tol.rel, "ulps": tol.ulps}


@dataclass(frozen=True)
class _ToleranceTable:
    abs: float = 0.0
    rel: float = 0.0
    ulps: int = 0

    def check(self, where: str) -> None:
        for name in _TOLERANCE_KEYS:
            if getattr(self, name) < 0:
                raise JobError(f'{where}: field "{name}" must be >= 0, got {getattr(self, name)!r}')

    def tolerance(self) -> Tolerance:
        return Tolerance(abs=self.abs, rel=self.rel, ulps=self.ulps)


@dataclass(frozen=True)
class _ParityTable(_ToleranceTable):
    sample_size: int = 10
    score_columns: str | tuple[str, ...] | None = None
    label_columns: str | tuple[str, ...] = ()
    threshold: float = 0.5
    strict_types: bool = False
    certificate_dir: str | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)

    def check(self, where: str) -> None:
        super().check(where)
        if self.sample_size < 0:
            raise JobError(f'{where}: field "sample_size" must be >= 0, got {self.sample_size!r}')


def with_defaults(defaults: Mapping[str, Any], section: Mapping[str, Any]) -> dict[str, Any]:
    """A ``[parity]`` table over a bundle's ``[parity]`` defaults: every field the job sets wins,
    and ``columns`` merge, a job's entry for a column replacing the bundle's whole."""
    merged = {**defaults, **{k: v for k, v in section.items() if k != "columns"}}
    columns = {**defaults.get("columns", {}), **section.get("columns", {})}
    if columns:
        merged["columns"] = columns
    return merged


def parse_parity_settings(section: Mapping[str, Any], file: str | Path) -> ParitySettings:
    """Build ParitySettings from a job file's ``[parity]`` table (an empty one gives the defaults).

    Raises:
        JobError: an unknown field or a value of the wrong type or range, naming the file, the
            table (``[parity]`` or ``[parity.columns.<name>]``) and the field.
    """
    table = parse_table(_ParityTable, section, f"{file}: [parity]")
    columns = {
        str(name): parse_table(_ToleranceTable, sub, f"{file}: [parity.columns.{name}]").tolerance()
        for name, sub in table.columns.items()
    }
    return ParitySettings(
        default=table.tolerance(),
        columns=columns,
        sample_size=table.sample_size,
        score_columns=(table.score_columns,) if isinstance(table.score_columns, str) else table.score_columns,
        label_columns=(table.label_columns,) if isinstance(table.label_columns, str) else table.label_columns,
        threshold=table.threshold,
        strict_types=table.strict_types,
        certificate_dir=table.certificate_dir,
    )
