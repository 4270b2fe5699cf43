"""Ray's read units (``ray_backend.reading``): planned on the driver, read by the tasks.

No engine: the planner and the reader are plain functions. Every row of the input must be in
exactly one unit, in order, whatever the row groups and the wanted unit size.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ray_backend.reading import ReadUnit, plan_units, read_unit, rows_per_unit


@pytest.fixture
def files(tmp_path):
    """Two Parquet files: 10 rows in row groups of 4, 4, 2; and 3 rows in one row group."""
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": range(10), "x": [float(i) for i in range(10)]}), first, row_group_size=4)
    pq.write_table(pa.table({"id": range(10, 13), "x": [1.5, 2.5, 3.5]}), second)
    return [str(first), str(second)]


def test_units_are_runs_of_whole_row_groups_covering_every_row_once(files):
    groups = {files[0]: (4, 4, 2), files[1]: (3,)}
    assert plan_units(files, groups, rows_wanted=5) == [
        ReadUnit(files[0], (0, 1), 8),  # 4 rows < 5: the next group joins it
        ReadUnit(files[0], (2,), 2),  # the file's last group ends a unit
        ReadUnit(files[1], (0,), 3),
    ]
    assert plan_units(files, groups, rows_wanted=1) == [
        ReadUnit(files[0], (0,), 4),
        ReadUnit(files[0], (1,), 4),
        ReadUnit(files[0], (2,), 2),
        ReadUnit(files[1], (0,), 3),
    ]
    assert plan_units(files, groups, rows_wanted=10**6) == [
        ReadUnit(files[0], (0, 1, 2), 10),
        ReadUnit(files[1], (0,), 3),
    ]
    assert plan_units(files, {files[0]: (), files[1]: (0,)}, rows_wanted=5) == []  # empty files: no unit


def test_a_chunk_reads_only_its_own_row_groups(files):
    """A chunk of a resumable run (``InputInfo.row_groups``) names the row groups that are its own."""
    groups = {files[0]: (4, 4, 2), files[1]: (3,)}
    units = plan_units(files, groups, rows_wanted=100, selected={files[0]: (1, 2)})
    assert units == [ReadUnit(files[0], (1, 2), 6), ReadUnit(files[1], (0,), 3)]
    ids = [
        i
        for u in units
        for t in read_unit(u.to_item(), columns=["id"], batch_rows=4)
        for i in t["id"].to_pylist()
    ]
    assert ids == [4, 5, 6, 7, 8, 9, 10, 11, 12]


def test_read_unit_gives_exactly_its_rows_in_batches(files):
    units = plan_units(files, {files[0]: (4, 4, 2), files[1]: (3,)}, rows_wanted=5)
    batches = [t for u in units for t in read_unit(u.to_item(), columns=["id"], batch_rows=3)]
    assert [t.num_rows for t in batches] == [3, 3, 2, 2, 3]  # batches never cross a unit
    assert pa.concat_tables(batches).column("id").to_pylist() == list(range(13))
    assert batches[0].schema.names == ["id"]


def test_csv_unit_reads_with_the_driver_schema(tmp_path):
    path = tmp_path / "in.csv"
    pacsv.write_csv(pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]}), path)
    schema = pa.schema([("id", pa.int64()), ("x", pa.float32())])
    (unit,) = plan_units([str(path)], {str(path): (3,)}, rows_wanted=10)
    tables = list(read_unit(unit.to_item(), columns=["x", "id"], batch_rows=2, fmt="csv", schema=schema))
    assert [t.num_rows for t in tables] == [2, 1]
    assert tables[0].schema.field("x").type == pa.float32()


def test_rows_per_unit_aims_at_units_per_replica():
    assert rows_per_unit(1_000_000, replicas=2, units_per_replica=4) == 125_000
    assert rows_per_unit(1, replicas=2, units_per_replica=4) == 1
    assert rows_per_unit(1_000_000, replicas=2, units_per_replica=0) == 1_000_000  # a unit per file
