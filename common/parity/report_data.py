"""What a parity check found: per-side, per-pair and per-column results, and their display.

The report states the verdict and, when it fails, everything needed to act on it: which keys
are missing, which columns differ and by how much, example rows, and, with a reference, which
engine left it. ``common.parity.report`` turns it into text, JSON and HTML.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import re
from dataclasses import dataclass, field
from typing import Any

from common.spec.parity import ParitySettings

#: the verdict words of a column, a comparison, a shadow run and a fleet's job: equal bit for bit,
#: equal within the ``[parity]`` tolerances (bit-identical included), or not.
BIT_IDENTICAL, WITHIN_TOLERANCE, DIFFERS = "bit-identical", "within tolerance", "DIFFERS"


@dataclass
class SideSummary:
    """What was read from one output and what is wrong with its keys."""

    name: str
    path: str
    rows: int = 0
    files: int = 0
    null_keys: int = 0
    duplicate_keys: int = 0  # distinct keys carried by more than one row
    duplicate_rows: int = 0  # rows carrying such keys
    duplicate_examples: list[dict] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Why this side cannot be fully compared (empty when its keys are clean)."""
        found = []
        if self.null_keys:
            found.append(f"{self.name}: {self.null_keys:,} rows with a null key")
        if self.duplicate_keys:
            found.append(
                f"{self.name}: {self.duplicate_keys:,} keys occur more than once "
                f"({self.duplicate_rows:,} rows; not compared)"
            )
        return found


@dataclass
class ColumnResult:
    """Comparison figures of one column between the two sides of a pair."""

    name: str
    left_type: str
    right_type: str
    kind: str | None = None
    status: str = "compared"  # compared | missing | incompatible
    missing_on: str | None = None
    required: bool = True  # False: a column on one side only is reported, not a failure
    compared: int = 0
    unequal: int = 0
    null_mismatches: int = 0
    max_abs_diff: float | None = None
    max_ulps: int | None = None
    ulp_unit: str | None = None
    bit_identical: bool = True
    tolerance: str | None = None
    decision_flips: int | None = None  # label columns: unequal rows; scores: threshold flips

    @property
    def type_differs(self) -> bool:
        return self.status == "compared" and self.left_type != self.right_type

    @property
    def passed(self) -> bool:
        return self.status == "compared" and self.unequal == 0

    @property
    def verdict(self) -> str:
        if self.status == "missing":
            return f"missing on {self.missing_on}" + ("" if self.required else " (not compared)")
        if self.status == "incompatible":
            return "INCOMPATIBLE"
        if self.unequal:
            return DIFFERS
        if not self.compared:
            return "no rows"
        return BIT_IDENTICAL if self.bit_identical else WITHIN_TOLERANCE


@dataclass
class SampleRow:
    """One unequal row: its key and (left, right) values of each differing column."""

    key: dict[str, Any]
    columns: dict[str, tuple[Any, Any]]


@dataclass
class PairResult:
    """Everything found comparing two sides."""

    left: str
    right: str
    matched: int = 0  # keys present exactly once on both sides, hence compared
    left_only: int = 0
    right_only: int = 0
    duplicate_keys_skipped: int = 0  # keys on both sides but duplicated on one
    left_only_examples: list[dict] = field(default_factory=list)
    right_only_examples: list[dict] = field(default_factory=list)
    columns: list[ColumnResult] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.left} vs {self.right}"

    def problems(self, strict_types: bool = False) -> list[str]:
        """Reasons this pair fails, one line each (empty when it passes)."""
        found = []
        if self.left_only:
            found.append(f"{self.name}: {self.left_only:,} keys only in {self.left}")
        if self.right_only:
            found.append(f"{self.name}: {self.right_only:,} keys only in {self.right}")
        for c in self.columns:
            if c.status == "missing":
                if c.required:
                    found.append(f"{self.name}: column {c.name} missing on {c.missing_on}")
            elif c.status == "incompatible":
                found.append(f"{self.name}: column {c.name} has incompatible types")
            elif c.unequal:
                found.append(f"{self.name}: column {c.name} differs in {c.unequal:,} rows")
            elif strict_types and c.type_differs:
                found.append(f"{self.name}: column {c.name} is {c.left_type} vs {c.right_type}")
        return found


@dataclass
class ScoreDistribution:
    """Distribution of one score column on each side, and KS/PSI between sides."""

    column: str
    sides: dict[str, dict]
    histogram_edges: list[float]
    histogram_counts: dict[str, list[int]]
    comparisons: list[dict] = field(default_factory=list)


@dataclass
class ParityReport:
    """Result of ``compare_outputs``; ``ok`` is the verdict."""

    key: tuple[str, ...]
    reference: str | None
    sides: list[SideSummary]
    pairs: list[PairResult]
    distributions: list[ScoreDistribution]
    settings: ParitySettings
    buckets: int = 1
    seconds: float = 0.0
    compiled_sql: bool = False  # the job has sql transforms: Spark runs them, the others compile them

    @property
    def ok(self) -> bool:
        """True when every pair matches: same keys, same columns, all values within tolerance."""
        return not self.problems()

    def problems(self) -> list[str]:
        """Every reason for failure, one line each."""
        found = [p for side in self.sides for p in side.problems()]
        for pair in self.pairs:
            found.extend(pair.problems(self.settings.strict_types))
        return found

    def reference_findings(self) -> list[str]:
        """Per differing column (and for keys), which sides left the reference and which agree."""
        if self.reference is None:
            return []
        ref = self.reference
        against = {p.right: p for p in self.pairs if p.left == ref}
        findings = []
        for side, pair in against.items():
            if pair.left_only or pair.right_only:
                findings.append(
                    f"{side} differs from {ref} on keys: {pair.right_only:,} extra, "
                    f"{pair.left_only:,} missing"
                )
        names = list(dict.fromkeys(c.name for p in against.values() for c in p.columns))
        for name in names:
            results = {side: _column(pair, name) for side, pair in against.items()}
            left = [(side, c) for side, c in results.items() if c is not None and not c.passed]
            if not left:
                continue
            agree = [side for side, c in results.items() if c is not None and c.passed]
            if self.compiled_sql and [side for side, _ in left] == ["spark"] and agree:
                # Spark defines SQL: when the compiled sides agree, they are the ones that left it
                c = left[0][1]
                findings.append(
                    f"{' and '.join([*agree, ref])} (compiled SQL) differ from spark on {name}"
                    + (
                        f" in {c.unequal:,} rows"
                        if c.status == "compared"
                        else f": {_departure('spark', ref, c)}"
                    )
                )
                continue
            parts = [_departure(side, ref, c) for side, c in left]
            if agree:
                verb = "agrees" if len(agree) == 1 else "agree"
                parts.append(f"{', '.join(agree)} {verb} with {ref}")
            findings.append("; ".join(parts))
        return findings

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (non-finite floats become "NaN"/"Infinity" strings)."""
        return _jsonable(
            {
                "ok": self.ok,
                "problems": self.problems(),
                "reference_findings": self.reference_findings(),
                "key": list(self.key),
                "reference": self.reference,
                "settings": self.settings.to_dict(),
                "sides": [dataclasses.asdict(s) for s in self.sides],
                "pairs": [
                    {**dataclasses.asdict(p), "columns": [_column_dict(c) for c in p.columns]}
                    for p in self.pairs
                ],
                "distributions": [dataclasses.asdict(d) for d in self.distributions],
                "buckets": self.buckets,
                "compiled_sql": self.compiled_sql,
                "seconds": round(self.seconds, 3),
            }
        )


def _column(pair: PairResult, name: str) -> ColumnResult | None:
    return next((c for c in pair.columns if c.name == name), None)


def _departure(side: str, ref: str, c: ColumnResult) -> str:
    if c.status == "missing":
        return f"{side} differs from {ref} on {c.name}: column missing on {c.missing_on}"
    if c.status == "incompatible":
        return f"{side} differs from {ref} on {c.name}: {c.right_type} vs {c.left_type}"
    return f"{side} differs from {ref} on {c.name} in {c.unequal:,} rows"


def _column_dict(c: ColumnResult) -> dict[str, Any]:
    return {**dataclasses.asdict(c), "verdict": c.verdict, "type_differs": c.type_differs}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def show_value(value: Any, width: int = 32) -> str:
    """A value as the report prints it: floats in full (repr) so 1-ULP differences show."""
    if value is None:
        text = "null"
    elif isinstance(value, (list, tuple)) and len(value) > 6:
        text = "[" + ", ".join(show_value(v, 12) for v in value[:4]) + f", ... {len(value)} items]"
    elif isinstance(value, (dt.datetime, dt.date, dt.time)):
        text = value.isoformat()
    else:
        text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def show_number(value: float | int | None) -> str:
    """Compact figure for tables: ``-`` when absent."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}" if value < 10**9 else f"{value:.3g}"
    return f"{value:.3g}"


def show_type(c: ColumnResult) -> str:
    """One type when both sides agree, else ``left / right``; list field names dropped."""
    left, right = _short_type(c.left_type), _short_type(c.right_type)
    return left if left == right else f"{left} / {right}"


def _short_type(text: str) -> str:
    # "list<element: double>" says no more than "list<double>" and is twice as wide.
    return re.sub(r"<(?:item|element): ", "<", text)
