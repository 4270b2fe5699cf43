"""Row-by-row comparison of two aligned columns that already share one Arrow type.

Each comparison returns which rows differ plus the figures the report needs (null mismatches,
largest absolute and ULP differences, bit identity). The rules are the ones general-purpose
frame comparisons get wrong for predictions: NaN equals NaN, NaN is not null, an infinity
equals only itself, and no tolerance is applied to anything but floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.parity.types import ColumnPlan
from common.spec.parity import Tolerance


@dataclass
class ColumnDiff:
    """Outcome of comparing one column over a batch of matched rows.

    Attributes:
        unequal: Per row, True when the values differ (null mismatches included).
        null_mismatches: Rows where exactly one side is null.
        bit_identical: Every compared value was bitwise equal (both-null counts as equal).
        max_abs_diff: Largest |a-b| over rows where both values are finite numbers.
        max_ulps: Largest ULP distance over finite float pairs (float kinds only).
        threshold_flips: Rows where ``value >= threshold`` differs (float columns only).
    """

    unequal: np.ndarray
    null_mismatches: int
    bit_identical: bool
    max_abs_diff: float | None = None
    max_ulps: int | None = None
    threshold_flips: int | None = None


def diff_column(
    plan: ColumnPlan,
    left: pa.Array,
    right: pa.Array,
    tolerance: Tolerance,
    ulp_bits: int,
    threshold: float | None = None,
) -> ColumnDiff:
    """Compare two aligned arrays of type ``plan.target``.

    Args:
        plan: The column's plan; its kind picks the comparison.
        left: Values of the left side, one per matched row.
        right: Values of the right side, aligned with ``left``.
        tolerance: Applied to floats (and float list elements) only.
        ulp_bits: 32 or 64: the float width ULP distances are measured in.
        threshold: When given for a float column, also count decision flips at it.
    """
    if plan.kind == "float":
        return _float_diff(left, right, tolerance, ulp_bits, threshold)
    if plan.kind == "integer":
        return _integer_diff(left, right)
    if plan.kind == "list":
        return _list_diff(plan, left, right, tolerance, ulp_bits)
    if plan.kind == "object":
        return _object_diff(left, right)
    return _exact_diff(left, right)


def ulp_distance(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """ULP distance between float arrays, as uint64, measured at ``bits`` precision.

    Uses the ordered-integer trick: reinterpret the bit pattern as a signed integer and
    mirror negative values, so adjacent floats differ by one and -0.0 equals +0.0.
    """
    if bits == 32:
        oa = _ordered32(a.astype(np.float32, copy=False))
        ob = _ordered32(b.astype(np.float32, copy=False))
        return np.abs(oa - ob).astype(np.uint64)
    oa, ob = _ordered64(a.astype(np.float64, copy=False)), _ordered64(b.astype(np.float64, copy=False))
    ua, ub = oa.view(np.uint64), ob.view(np.uint64)
    # Modular uint64 subtraction gives the exact distance even across the whole range.
    return np.where(oa >= ob, ua - ub, ub - ua)


def _ordered64(x: np.ndarray) -> np.ndarray:
    i = x.view(np.int64)
    return np.where(i < 0, np.int64(np.iinfo(np.int64).min) - i, i)


def _ordered32(x: np.ndarray) -> np.ndarray:
    i = x.view(np.int32).astype(np.int64)
    return np.where(i < 0, np.int64(np.iinfo(np.int32).min) - i, i)


def float_equal(a: np.ndarray, b: np.ndarray, tol: Tolerance, ulp_bits: int):
    """Element-wise equality of two float arrays under ``tol``.

    Returns:
        ``(equal, bit_same, abs_diff, ulps, finite)``: equality per element, bitwise
        identity, |a-b|, ULP distance, and where both values are finite.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        uint = np.dtype(f"u{a.itemsize}")
        bit_same = a.view(uint) == b.view(uint)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        finite = np.isfinite(a) & np.isfinite(b)
        abs_diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        ulps = ulp_distance(a, b, ulp_bits)
        # a == b covers equal finite values and an infinity matched with itself; no tolerance
        # below may rescue an infinity, hence the ``finite`` guard on each criterion.
        equal = (a == b) | (nan_a & nan_b)
        if tol.abs:
            equal |= finite & (abs_diff <= tol.abs)
        if tol.rel:
            scale = np.maximum(np.abs(a), np.abs(b)).astype(np.float64)
            equal |= finite & (abs_diff <= tol.rel * scale)
        if tol.ulps:
            equal |= finite & (ulps <= np.uint64(tol.ulps))
    return equal, bit_same, abs_diff, ulps, finite


def _validity(left: pa.Array, right: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    va = left.is_valid().to_numpy(zero_copy_only=False)
    vb = right.is_valid().to_numpy(zero_copy_only=False)
    return va, vb


def _float_diff(left, right, tol, ulp_bits, threshold) -> ColumnDiff:
    va, vb = _validity(left, right)
    # fill_null keeps null apart from NaN: validity is tracked separately above.
    a = _floats(left.fill_null(0).to_numpy(zero_copy_only=False))
    b = _floats(right.fill_null(0).to_numpy(zero_copy_only=False))
    both = va & vb
    null_mismatch = va != vb
    equal, bit_same, abs_diff, ulps, finite = float_equal(a, b, tol, ulp_bits)
    unequal = null_mismatch | (both & ~equal)
    measured = both & finite
    flips = None
    if threshold is not None:
        decided = both & ~np.isnan(a) & ~np.isnan(b)
        flips = int(np.count_nonzero(decided & ((a >= threshold) != (b >= threshold))))
    return ColumnDiff(
        unequal=unequal,
        null_mismatches=int(np.count_nonzero(null_mismatch)),
        bit_identical=not null_mismatch.any() and bool(bit_same[both].all()),
        max_abs_diff=float(abs_diff[measured].max()) if measured.any() else None,
        max_ulps=int(ulps[measured].max()) if measured.any() else None,
        threshold_flips=flips,
    )


def _floats(x: np.ndarray) -> np.ndarray:
    # float16 has no ULP rule of its own here; widen it exactly to float32.
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _integer_diff(left, right) -> ColumnDiff:
    va, vb = _validity(left, right)
    a = left.fill_null(0).to_numpy(zero_copy_only=False)
    b = right.fill_null(0).to_numpy(zero_copy_only=False)
    both = va & vb
    null_mismatch = va != vb
    unequal = null_mismatch | (both & (a != b))
    max_abs = None
    if both.any():
        max_abs = float(np.abs(a[both].astype(np.float64) - b[both].astype(np.float64)).max())
    return ColumnDiff(
        unequal=unequal,
        null_mismatches=int(np.count_nonzero(null_mismatch)),
        bit_identical=not unequal.any(),
        max_abs_diff=max_abs,
    )


def _exact_diff(left, right) -> ColumnDiff:
    va, vb = _validity(left, right)
    equal = pc.equal(left, right).fill_null(False).to_numpy(zero_copy_only=False)
    null_mismatch = va != vb
    unequal = null_mismatch | (va & vb & ~equal)
    return ColumnDiff(
        unequal=unequal,
        null_mismatches=int(np.count_nonzero(null_mismatch)),
        bit_identical=not unequal.any(),
    )


def _object_diff(left, right) -> ColumnDiff:
    # Structs and maps have no Arrow equality kernel; compare their Python values.
    a, b = left.to_pylist(), right.to_pylist()
    null_mismatch = np.array([(x is None) != (y is None) for x, y in zip(a, b, strict=True)], dtype=bool)
    unequal = np.array([x != y for x, y in zip(a, b, strict=True)], dtype=bool)
    return ColumnDiff(
        unequal=unequal.reshape(len(a)),
        null_mismatches=int(np.count_nonzero(null_mismatch)),
        bit_identical=not unequal.any(),
    )


def _list_diff(plan, left, right, tol, ulp_bits) -> ColumnDiff:
    va, vb = _validity(left, right)
    len_a = pc.list_value_length(left).fill_null(0).to_numpy(zero_copy_only=False)
    len_b = pc.list_value_length(right).fill_null(0).to_numpy(zero_copy_only=False)
    both = va & vb
    null_mismatch = va != vb
    length_mismatch = both & (len_a != len_b)
    same_shape = both & (len_a == len_b)
    # flatten() drops the children of null lists, matching the zero lengths filled above, so
    # repeating the row mask by length selects exactly the elements of comparable rows.
    elems_a = left.flatten().filter(pa.array(np.repeat(same_shape, len_a)))
    elems_b = right.flatten().filter(pa.array(np.repeat(same_shape, len_b)))
    row_of_element = np.repeat(np.arange(len(left)), np.where(same_shape, len_a, 0))
    inner = diff_column(plan.element, elems_a, elems_b, tol, ulp_bits)
    element_unequal = np.zeros(len(left), dtype=bool)
    element_unequal[row_of_element[inner.unequal]] = True
    unequal = null_mismatch | length_mismatch | element_unequal
    return ColumnDiff(
        unequal=unequal,
        null_mismatches=int(np.count_nonzero(null_mismatch)),
        bit_identical=not null_mismatch.any() and not length_mismatch.any() and inner.bit_identical,
        max_abs_diff=inner.max_abs_diff,
        max_ulps=inner.max_ulps,
    )
