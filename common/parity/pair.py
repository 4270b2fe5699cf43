"""Pass 2 of the comparison: match the keys of one bucket and compare two sides' columns.

Every key of a bucket lives in that bucket on every side, so joining bucket by bucket finds
exactly the keys present on one side only, the duplicated ones, and the pairs of rows to
compare. Examples (key-only keys, unequal rows) are the smallest keys of the earliest buckets,
so they depend on the data alone, not on the order in which files were read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.errors import InputError
from common.parity.column_diff import ColumnDiff, diff_column
from common.parity.report_data import ColumnResult, PairResult, SampleRow, SideSummary
from common.parity.types import ColumnPlan, cast_to_plan, is_float_like
from common.spec.parity import ParitySettings

# Helper column names, unlikely to clash with a user's key.
_ROW, _COUNT = "__parity_row", "__parity_count"
_L_ROW, _L_N, _R_ROW, _R_N = "__parity_l_row", "__parity_l_n", "__parity_r_row", "__parity_r_n"


def key_index(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """One row per distinct key of a bucket: the key, its first row, how many rows carry it."""
    rows = pa.table({**{k: table[k] for k in keys}, _ROW: np.arange(table.num_rows, dtype=np.int64)})
    grouped = rows.group_by(list(keys), use_threads=False).aggregate([(_ROW, "min"), (_ROW, "count")])
    picked = grouped.select([*keys, f"{_ROW}_min", f"{_ROW}_count"])
    return picked.rename_columns([*keys, _ROW, _COUNT])


def count_duplicates(summary: SideSummary, index: pa.Table, keys: Sequence[str], sample_size: int):
    """Add a bucket's duplicated keys (and a few examples) to a side's summary."""
    dups = index.filter(pc.greater(index[_COUNT], 1))
    if not dups.num_rows:
        return
    summary.duplicate_keys += dups.num_rows
    summary.duplicate_rows += int(pc.sum(dups[_COUNT]).as_py())
    room = sample_size - len(summary.duplicate_examples)
    if room > 0:
        dups = dups.sort_by([(k, "ascending") for k in keys]).slice(0, room)
        for example in dups.select([*keys, _COUNT]).to_pylist():
            example["rows"] = example.pop(_COUNT)
            summary.duplicate_examples.append(example)


class PairComparison:
    """Accumulates the figures of one pair of sides over all buckets.

    Args:
        left: Left side name (the reference, when there is one).
        right: Right side name.
        plans: Per column, its plan, None when the types are incompatible, or the name of the
            side that lacks it.
        types: Per column, the original type on each side that has it.
        keys: Key columns.
        settings: Tolerances and sample size.
        score_columns: Float columns whose decision flips at the threshold are counted.
    """

    def __init__(
        self,
        left: str,
        right: str,
        plans: Mapping[str, ColumnPlan | None | str],
        types: Mapping[str, Mapping[str, pa.DataType]],
        keys: Sequence[str],
        settings: ParitySettings,
        score_columns: Sequence[str],
    ) -> None:
        self.left, self.right, self.keys, self.settings = left, right, list(keys), settings
        self.plans = {n: p for n, p in plans.items() if isinstance(p, ColumnPlan)}
        self.score_columns = set(score_columns)
        self.result = PairResult(left, right)
        for name, plan in plans.items():
            self.result.columns.append(_column_result(name, plan, types[name], left, right, settings))
        self.columns = {c.name: c for c in self.result.columns}

    def add_bucket(self, tables: Mapping[str, pa.Table], index: Mapping[str, pa.Table]) -> None:
        """Match the keys of one bucket and compare the matched rows column by column."""
        pair, lt, rt = self.result, tables[self.left], tables[self.right]
        joined = _join(index[self.left], index[self.right], self.keys)
        has_l = pc.is_valid(joined[_L_ROW]).to_numpy(zero_copy_only=False)
        has_r = pc.is_valid(joined[_R_ROW]).to_numpy(zero_copy_only=False)
        once = (joined[_L_N].fill_null(0).to_numpy() == 1) & (joined[_R_N].fill_null(0).to_numpy() == 1)
        pair.left_only += self._only(joined, has_l & ~has_r, pair.left_only_examples)
        pair.right_only += self._only(joined, has_r & ~has_l, pair.right_only_examples)
        pair.duplicate_keys_skipped += int(np.count_nonzero(has_l & has_r & ~once))
        matched = np.flatnonzero(once)
        pair.matched += len(matched)
        if not len(matched):
            return
        li = pa.array(joined[_L_ROW].fill_null(-1).to_numpy()[matched])
        ri = pa.array(joined[_R_ROW].fill_null(-1).to_numpy()[matched])
        values, diffs = {}, {}
        for name, plan in self.plans.items():
            left = self._cast(lt[name].take(li).combine_chunks(), plan, self.left)
            right = self._cast(rt[name].take(ri).combine_chunks(), plan, self.right)
            diff = diff_column(
                plan,
                left,
                right,
                self.settings.tolerance_for(name),
                plan.ulp_bits(self.left, self.right),
                self.settings.threshold if name in self.score_columns and plan.kind == "float" else None,
            )
            _accumulate(self.columns[name], diff, len(matched), name in self.settings.label_columns)
            values[name], diffs[name] = (left, right), diff
        self._sample(joined, matched, values, diffs)

    @staticmethod
    def _cast(array: pa.Array, plan: ColumnPlan, side: str) -> pa.Array:
        try:
            return cast_to_plan(array, plan)
        except pa.ArrowInvalid as exc:  # e.g. a uint64 beyond int64 next to an int64 column
            raise InputError(
                f"{side} column '{plan.name}' cannot be compared as {plan.target}: {exc}"
            ) from exc

    def _sample(self, joined: pa.Table, matched: np.ndarray, values, diffs: dict[str, ColumnDiff]):
        room = self.settings.sample_size - len(self.result.samples)
        if room <= 0 or not diffs:
            return
        differing = np.flatnonzero(np.logical_or.reduce([d.unequal for d in diffs.values()]))
        if not len(differing):
            return
        chosen = differing[_key_order(joined, self.keys, matched[differing])[:room]]
        keys = joined.select(self.keys).take(pa.array(matched[chosen])).to_pylist()
        for pos, key in zip(chosen, keys, strict=True):
            columns = {
                name: (values[name][0][pos].as_py(), values[name][1][pos].as_py())
                for name, diff in diffs.items()
                if diff.unequal[pos]
            }
            self.result.samples.append(SampleRow(key=key, columns=columns))

    def _only(self, joined: pa.Table, mask: np.ndarray, examples: list) -> int:
        rows = np.flatnonzero(mask)
        room = self.settings.sample_size - len(examples)
        if len(rows) and room > 0:
            chosen = rows[_key_order(joined, self.keys, rows)[:room]]
            examples.extend(joined.select(self.keys).take(pa.array(chosen)).to_pylist())
        return len(rows)


def _key_order(table: pa.Table, keys: list[str], rows: np.ndarray) -> np.ndarray:
    """Positions into ``rows`` ordered by the key values of those rows."""
    picked = table.select(keys).take(pa.array(rows, type=pa.int64()))
    return pc.sort_indices(picked, sort_keys=[(k, "ascending") for k in keys]).to_numpy()


def _join(left: pa.Table, right: pa.Table, keys: list[str]) -> pa.Table:
    # Only keys and row numbers go through the join: Arrow's hash join cannot carry list columns.
    lhs = left.rename_columns([*keys, _L_ROW, _L_N])
    rhs = right.rename_columns([*keys, _R_ROW, _R_N])
    return lhs.join(rhs, keys, join_type="full outer", use_threads=False)


def _column_result(name, plan, types, left, right, settings: ParitySettings) -> ColumnResult:
    result = ColumnResult(
        name=name,
        left_type=str(types[left]) if left in types else "-",
        right_type=str(types[right]) if right in types else "-",
    )
    if isinstance(plan, str):
        result.status, result.missing_on = "missing", plan
    elif plan is None:
        result.status = "incompatible"
    else:
        result.kind = plan.kind
        if is_float_like(plan):
            result.tolerance = settings.tolerance_for(name).describe()
            result.ulp_unit = f"float{plan.ulp_bits(left, right)}"
    return result


def _accumulate(column: ColumnResult, diff: ColumnDiff, rows: int, is_label: bool) -> None:
    unequal = int(np.count_nonzero(diff.unequal))
    column.compared += rows
    column.unequal += unequal
    column.null_mismatches += diff.null_mismatches
    column.bit_identical = column.bit_identical and diff.bit_identical
    if diff.max_abs_diff is not None:
        column.max_abs_diff = max(column.max_abs_diff or 0.0, diff.max_abs_diff)
    if diff.max_ulps is not None:
        column.max_ulps = max(column.max_ulps or 0, diff.max_ulps)
    if is_label:
        column.decision_flips = (column.decision_flips or 0) + unequal
    elif diff.threshold_flips is not None:
        column.decision_flips = (column.decision_flips or 0) + diff.threshold_flips
