"""Dead letters: rows whose prediction raised, set aside instead of failing the job.

With ``job.on_error = "dead_letter"`` every executor's output carries ``ERROR_COLUMN`` (null for a
good row, the one-line error of a failed one; see ``Predictor.run_batch``). After the engine has
finished, the runner splits the staged output in one streaming pass: good rows stay in the data
files (without the error column), failed rows go to ``<output>/_dead_letter/`` as Parquet with the
key and passthrough columns and ``error``. Both engines share this code, so they agree on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.errors import BundleError
from common.model.predictor import ERROR_COLUMN

DEAD_LETTER_DIR = "_dead_letter"
DEAD_LETTER_ERROR = "error"


def dead_letter_files(output: Path) -> list[Path]:
    """The dead-letter Parquet files of an output (or staging) folder."""
    folder = output / DEAD_LETTER_DIR
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def split_dead_letters(files: list[Path], output: Path, passthrough: tuple[str, ...]) -> int:
    """Moves the failed rows of ``files`` into ``output/_dead_letter``; returns how many there were.

    Each data file is rewritten without the error column (through a temporary file, then a rename);
    the dead-letter files hold the ``passthrough`` columns (the key first) and ``error``.
    """
    dead_dir = output / DEAD_LETTER_DIR
    total = 0
    for index, file in enumerate(files):
        source = pq.ParquetFile(file)
        schema = source.schema_arrow
        if ERROR_COLUMN not in schema.names:
            continue
        data_schema = schema.remove(schema.get_field_index(ERROR_COLUMN))
        dead_schema = pa.schema([schema.field(c) for c in passthrough]).append(
            pa.field(DEAD_LETTER_ERROR, pa.string())
        )
        temporary = file.with_name(f".{file.name}.split")
        dead_writer = None
        with pq.ParquetWriter(temporary, data_schema) as writer:
            for batch in source.iter_batches():
                table = pa.Table.from_batches([batch], schema=schema)
                failed = pc.is_valid(table.column(ERROR_COLUMN))
                writer.write_table(table.filter(pc.invert(failed)).drop_columns([ERROR_COLUMN]))
                dead = table.filter(failed)
                if dead.num_rows:
                    if dead_writer is None:
                        dead_dir.mkdir(exist_ok=True)
                        dead_writer = pq.ParquetWriter(dead_dir / f"part-{index:05d}.parquet", dead_schema)
                    dead = dead.select([*passthrough, ERROR_COLUMN]).rename_columns(
                        [*passthrough, DEAD_LETTER_ERROR]
                    )
                    dead_writer.write_table(dead)
                    total += dead.num_rows
        if dead_writer is not None:
            dead_writer.close()
        source.close()
        os.replace(temporary, file)
    return total


#: A job whose dead-lettered rows are more than this share of its input fails instead of publishing:
#: a model that fails on (nearly) every row does not fit the input, whatever ``on_error`` says. Below
#: 100 input rows this means every row.
DEAD_LETTER_MAX_SHARE = 0.99


def check_preflight_rows(table: pa.Table, bundle) -> None:
    """Under dead_letter, the driver's preflight rows all failing is the bundle's fault, not the
    rows': a BundleError with the first row's error (no-op for a table without ``ERROR_COLUMN``)."""
    if ERROR_COLUMN not in table.column_names or not table.num_rows:
        return
    errors = table.column(ERROR_COLUMN)
    if errors.null_count == 0:
        raise BundleError(
            f"bundle {bundle.path}: every one of the first {table.num_rows} input rows failed at the "
            f"preflight ({errors[0].as_py()}); the model does not fit the input"
        )


def check_dead_letter_share(dead_rows: int, rows_in: int, output: Path) -> None:
    """Fails the job when more than ``DEAD_LETTER_MAX_SHARE`` of its rows were dead-lettered,
    naming the count and the first row's error (read from ``output``'s dead letters)."""
    if not rows_in or dead_rows <= DEAD_LETTER_MAX_SHARE * rows_in:
        return
    first = pq.read_table(dead_letter_files(output)[0], columns=[DEAD_LETTER_ERROR]).column(0)[0].as_py()
    raise BundleError(
        f"{dead_rows} of {rows_in} rows failed and were dead-lettered (more than "
        f"{DEAD_LETTER_MAX_SHARE:.0%}), e.g. {first}; the model does not fit the input, nothing published"
    )
