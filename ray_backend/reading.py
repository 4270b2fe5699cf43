"""The Ray executor's input: read units planned on the driver, read with pyarrow in the tasks.

The driver has already listed the input files, read every Parquet footer and settled the schema
(``InputInfo``), so the workers need not do it again. Ray 2.60's Parquet reader would: it starts
32 ``FooterReader`` actors (one worker process each) to read the footers again, and packs up to
128 MiB of files into one read task and one block, so that a 1M-row input was read, predicted and
written by one task after another on one CPU (measured: README, "Benchmarks"). Here each unit is a
run of whole row groups of one file (a whole file for CSV), and the task that reads it goes on to
predict and write in the same process, as the ceiling does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class ReadUnit:
    """Whole row groups ``[first, first + count)`` of one Parquet file, or a whole CSV file."""

    path: str
    first: int
    count: int
    rows: int

    def to_item(self) -> dict:
        return {"path": self.path, "first": self.first, "count": self.count, "rows": self.rows}


def plan_units(files: Sequence[str], row_groups: Sequence[Sequence[int]], rows_wanted: int) -> list[ReadUnit]:
    """Cuts each file into runs of whole row groups of about ``rows_wanted`` rows (at least one
    row group each), in file order. ``row_groups[i]`` holds the rows of each row group of file i."""
    units = []
    for path, groups in zip(files, row_groups, strict=True):
        first, rows = 0, 0
        for index, group_rows in enumerate(groups):
            rows += group_rows
            if rows >= rows_wanted or index == len(groups) - 1:
                units.append(ReadUnit(str(path), first, index + 1 - first, rows))
                first, rows = index + 1, 0
    return [u for u in units if u.rows]


def rows_per_unit(total_rows: int, replicas: int, units_per_replica: int) -> int:
    """About ``units_per_replica`` units per replica, so a slow unit does not hold the job up."""
    return max(1, math.ceil(total_rows / max(1, replicas * max(1, units_per_replica))))


def read_unit(
    item: dict, columns: Sequence[str], batch_rows: int, fmt: str = "parquet", schema: pa.Schema | None = None
) -> Iterator[pa.Table]:
    """The unit's rows in tables of ``batch_rows`` rows (the last may be shorter)."""
    if fmt == "csv":
        import pyarrow.csv as pacsv

        options = pacsv.ConvertOptions(column_types=schema, include_columns=list(columns))
        table = pacsv.read_csv(item["path"], convert_options=options)
        for offset in range(0, table.num_rows, batch_rows):
            yield table.slice(offset, batch_rows)
        return
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(item["path"])
    groups = list(range(item["first"], item["first"] + item["count"]))
    for batch in reader.iter_batches(batch_size=batch_rows, row_groups=groups, columns=list(columns)):
        yield pa.Table.from_batches([batch])
