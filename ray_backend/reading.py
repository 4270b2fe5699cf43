"""The Ray executor's input: read units planned on the driver, read with pyarrow in the tasks.

The driver has already listed the input files, read every Parquet footer and settled the schema
(``InputInfo``), so the workers need not do it again. Ray 2.60's Parquet reader would: it starts
32 ``FooterReader`` actors (one worker process each) to read the footers again, and packs up to
128 MiB of files into one read task and one block, so that a 1M-row input was read, predicted and
written by one task after another on one CPU (measured: README, "Benchmarks"). Here each unit is a
run of whole row groups of one file (a whole file for CSV; of a chunk, only its own row groups),
and the task that reads it goes on to predict and write in the same process, as the ceiling does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from common.run.inputs import csv_convert_options, naming_file


@dataclass(frozen=True)
class ReadUnit:
    """Some row groups of one Parquet file (their indices), or a whole CSV file (group 0)."""

    path: str
    groups: tuple[int, ...]
    rows: int

    def to_item(self) -> dict:
        return {"path": self.path, "groups": list(self.groups), "rows": self.rows}


def plan_units(
    files: Sequence[str],
    group_rows: Mapping[str, Sequence[int]],
    rows_wanted: int,
    selected: Mapping[str, Sequence[int]] | None = None,
) -> list[ReadUnit]:
    """Cuts each file into runs of row groups of about ``rows_wanted`` rows (at least one group
    each), in file order. ``group_rows[path]`` holds the rows of each row group of the file;
    ``selected[path]``, when given, the only row groups of it that belong to the input (a chunk)."""
    units = []
    for path in map(str, files):
        sizes = group_rows[path]
        indices = list((selected or {}).get(path, range(len(sizes))))
        run, rows = [], 0
        for position, index in enumerate(indices):
            run.append(index)
            rows += sizes[index]
            if rows >= rows_wanted or position == len(indices) - 1:
                if rows:
                    units.append(ReadUnit(path, tuple(run), rows))
                run, rows = [], 0
    return units


def rows_per_unit(total_rows: int, replicas: int, units_per_replica: int) -> int:
    """About ``units_per_replica`` units per replica, so a slow unit does not hold the job up;
    ``units_per_replica`` 0 makes each file one unit."""
    if units_per_replica <= 0:
        return max(1, total_rows)
    return max(1, math.ceil(total_rows / max(1, replicas * units_per_replica)))


def read_unit(
    item: dict,
    columns: Sequence[str],
    batch_rows: int,
    fmt: str = "parquet",
    schema: pa.Schema | None = None,
    partitions=None,
) -> Iterator[pa.Table]:
    """The unit's rows in tables of ``batch_rows`` rows (the last may be shorter), with the
    driver's partition values appended (``partitions``: ``common.run.partitions.Partitions``)."""
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with naming_file(item["path"], "csv"):
            table = pacsv.read_csv(item["path"], convert_options=csv_convert_options(schema, columns))
        for offset in range(0, table.num_rows, batch_rows):
            yield table.slice(offset, batch_rows)
        return
    import pyarrow.parquet as pq

    with naming_file(item["path"]):
        reader = pq.ParquetFile(item["path"])
        read = list(columns) if partitions is None else partitions.data_columns(columns)
        for batch in reader.iter_batches(
            batch_size=batch_rows, row_groups=list(item["groups"]), columns=read
        ):
            table = pa.Table.from_batches([batch])
            yield table if partitions is None else partitions.attach(table, item["path"], columns)
