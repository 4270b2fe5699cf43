"""Row and key reconciliation: every input row comes out exactly once, or the run fails.

Checked on every run, by every executor, before the output is published. The runner reads only
the key columns (``InputInfo.read_columns``, ``read_parquet_columns``), so the check costs a
fraction of the job.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.errors import InputError, OutputError


def check_input_keys(keys: pa.Table, where: str) -> None:
    """The key must be present and unique in the input: it is how rows are reconciled and compared."""
    for name in keys.column_names:
        nulls = keys.column(name).null_count
        if nulls:
            raise InputError(f'input {where}: key column "{name}" has {nulls} null value(s)')
    sorted_keys = _sorted_int_key(keys)
    if sorted_keys is not None and not (sorted_keys[1:] == sorted_keys[:-1]).any():
        return  # the common case, proved without hashing; the slow path below names a duplicate
    duplicate = _first_duplicate(keys)
    if duplicate is not None:
        raise InputError(f"input {where}: duplicate key {duplicate} (job.key must be unique)")


def reconcile(input_keys: pa.Table, output_keys: pa.Table, dead_letter_keys: pa.Table | None = None) -> None:
    """Output keys (plus dead-lettered ones) must equal the input keys, each exactly once."""
    parts = [output_keys] + ([dead_letter_keys] if dead_letter_keys is not None else [])
    produced = pa.concat_tables([p.select(input_keys.column_names).cast(input_keys.schema) for p in parts])
    counts = f"rows in {input_keys.num_rows}, rows out {output_keys.num_rows}"
    if dead_letter_keys is not None:
        counts += f", dead-lettered {dead_letter_keys.num_rows}"
    expected, got = _sorted_int_key(input_keys), _sorted_int_key(produced)
    if (
        expected is not None
        and got is not None
        and np.array_equal(expected, got)
        and not (expected[1:] == expected[:-1]).any()
    ):
        return  # equal sorted key arrays without repeats: every input row came out exactly once
    duplicate = _first_duplicate(produced)
    if duplicate is not None:
        raise OutputError(f"reconciliation failed ({counts}): key {duplicate} written more than once")
    names = input_keys.column_names
    lost = input_keys.join(produced, keys=names, join_type="left anti")
    if lost.num_rows:
        raise OutputError(
            f"reconciliation failed ({counts}): {lost.num_rows} input key(s) missing, e.g. {_row(lost, 0)}"
        )
    extra = produced.join(input_keys, keys=names, join_type="left anti")
    if extra.num_rows:
        raise OutputError(
            f"reconciliation failed ({counts}): {extra.num_rows} key(s) not in the input, e.g. "
            f"{_row(extra, 0)}"
        )


def _sorted_int_key(keys: pa.Table) -> np.ndarray | None:
    """A single null-free integer key column, sorted: checking it costs a tenth of the time and
    memory of the group-by/join path (measured at 1M keys: 40 ms and +10 MiB against 300 ms and
    +130 MiB). None for any other key, which takes the general path."""
    if (
        keys.num_columns != 1
        or not pa.types.is_integer(keys.schema.field(0).type)
        or keys.column(0).null_count
    ):
        return None
    return np.sort(keys.column(0).to_numpy())


def _first_duplicate(keys: pa.Table):
    if keys.num_rows == 0:
        return None
    counts = keys.group_by(keys.column_names).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts.column("count_all"), 1))
    return _row(dup.drop_columns(["count_all"]), 0) if dup.num_rows else None


def _row(table: pa.Table, i: int):
    row = {name: table.column(name)[i].as_py() for name in table.column_names}
    return next(iter(row.values())) if len(row) == 1 else row
