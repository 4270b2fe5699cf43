"""How each column is compared across engines: a common Arrow type and a comparison kind.

Engines disagree on types for the same prediction (Spark writes double and timestamp[us, UTC],
a float32 model in Ray writes float, pandas writes timestamp[ns]). Before comparing, every side
is cast to one common type per column so the comparison (``column_diff``) sees identical types;
the original types are kept so the report can still name the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.types as pat

_UNITS = ("s", "ms", "us", "ns")


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is compared.

    Attributes:
        name: Column name.
        kind: ``float``, ``integer``, ``exact`` (compared by value equality), ``list`` (element by
            element) or ``object`` (compared as Python values, for structs and maps).
        target: Arrow type that every side is cast to before comparing.
        types: Original Arrow type per side that has the column.
        float32_sides: Sides whose (element) floats are float32 or narrower; a pair involving one
            measures ULPs in float32 units, as that is the precision the value was produced at.
        element: Plan of the list elements when ``kind == "list"``.
    """

    name: str
    kind: str
    target: pa.DataType
    types: Mapping[str, pa.DataType]
    float32_sides: frozenset[str] = frozenset()
    element: ColumnPlan | None = None

    def ulp_bits(self, left: str, right: str) -> int:
        """32 when either side of the pair produced float32 values, else 64."""
        return 32 if self.float32_sides & {left, right} else 64


def common_type(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type both ``a`` and ``b`` can be cast to without changing what they mean.

    Returns None when no such type exists (e.g. string vs int64): such a column is reported
    as incompatible instead of being compared.
    """
    a, b = _decoded(a), _decoded(b)
    if pat.is_null(a):
        return b
    if pat.is_null(b):
        return a
    if pat.is_timestamp(a) and pat.is_timestamp(b):
        if a == b:
            return a
        # Different unit or zone: same instant must compare equal; tz-naive is read as UTC.
        return pa.timestamp(_finer(a.unit, b.unit), tz="UTC")
    if a == b:
        return a
    if _is_float(a) and _is_float(b):
        return pa.float64()
    if (_is_float(a) and pat.is_integer(b)) or (pat.is_integer(a) and _is_float(b)):
        return pa.float64()
    if pat.is_integer(a) and pat.is_integer(b):
        return pa.int64()
    if _is_string(a) and _is_string(b):
        return pa.large_string()
    if _is_binary(a) and _is_binary(b):
        return pa.large_binary()
    if pat.is_date(a) and pat.is_date(b):
        return pa.date64()
    if pat.is_time(a) and pat.is_time(b):
        return pa.time64("ns" if "ns" in (a.unit, b.unit) else "us")
    if pat.is_decimal(a) and pat.is_decimal(b):
        scale = max(a.scale, b.scale)
        precision = max(a.precision - a.scale, b.precision - b.scale) + scale
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    if _is_list(a) and _is_list(b):
        element = common_type(a.value_type, b.value_type)
        return None if element is None else pa.large_list(element)
    return None


def plan_column(name: str, types: Mapping[str, pa.DataType]) -> ColumnPlan | None:
    """Plan the comparison of ``name`` over the sides in ``types``; None if incompatible."""
    target = None
    for t in types.values():
        target = t if target is None else common_type(target, t)
        if target is None:
            return None
    target = _decoded(target)
    if pat.is_null(target):
        target = pa.float64()  # every side all-null: any type compares nulls alike
    if _is_list(target) and not pat.is_large_list(target):
        target = pa.large_list(target.value_type)  # one list layout for the comparison
    float32_sides = frozenset(side for side, t in types.items() if _float_bits(t) == 32)
    element = None
    if _is_list(target):
        element_types = {side: _list_values(t) for side, t in types.items()}
        element = plan_column(f"{name}[]", element_types)
        if element is None:
            return None
    return ColumnPlan(name, _kind(target), target, dict(types), float32_sides, element)


def _kind(t: pa.DataType) -> str:
    if _is_float(t):
        return "float"
    if pat.is_integer(t):
        return "integer"
    if _is_list(t):
        return "list"
    if pat.is_nested(t) or pat.is_union(t) or pat.is_map(t):
        return "object"
    return "exact"


def cast_to_plan(array: pa.Array | pa.ChunkedArray, plan: ColumnPlan) -> pa.Array:
    """Cast one side's column to the plan's common type (a no-op when it already is)."""
    if array.type == plan.target:
        return array
    return array.cast(plan.target)


def is_float_like(plan: ColumnPlan) -> bool:
    """True for float columns and lists of floats, the only ones a tolerance applies to."""
    return plan.kind == "float" or (plan.element is not None and is_float_like(plan.element))


def _decoded(t: pa.DataType) -> pa.DataType:
    return t.value_type if pat.is_dictionary(t) else t


def _finer(u1: str, u2: str) -> str:
    return max(u1, u2, key=_UNITS.index)


def _is_float(t: pa.DataType) -> bool:
    return pat.is_floating(t)


def _float_bits(t: pa.DataType) -> int | None:
    t = _decoded(t)
    if _is_list(t):
        return _float_bits(t.value_type)
    if pat.is_floating(t):
        return 64 if t.bit_width == 64 else 32
    return None


def _is_string(t: pa.DataType) -> bool:
    return pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return pat.is_binary(t) or pat.is_large_binary(t) or pat.is_binary_view(t)


def _is_list(t: pa.DataType) -> bool:
    return (
        pat.is_list(t)
        or pat.is_large_list(t)
        or pat.is_fixed_size_list(t)
        or pat.is_list_view(t)
        or pat.is_large_list_view(t)
    )


def _list_values(t: pa.DataType) -> pa.DataType:
    t = _decoded(t)
    return t.value_type if _is_list(t) else pa.null()
