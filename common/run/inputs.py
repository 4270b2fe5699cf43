"""The input: discovery and checks once on the driver before an engine starts, and reading.

Both executors read exactly the file list and schema found here, so they see the same rows with
the same types (Spark's and Arrow's CSV inference disagree; a schema inferred once and handed to
both does not). Everything in the harness that reads input files itself (the preflight's head,
the key check, the reference executor, Ray's CSV reader) reads them through ``InputInfo``.
Problems come back as one-line InputErrors naming the file or column.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from common.errors import InputError, JobError
from common.run.listing import check_input_root, data_files
from common.run.partitions import Partitions, check_no_overlap, discover


@dataclass(frozen=True)
class InputInfo:
    """What the driver learnt about the input: the files, their common schema, the row count.

    Attributes:
        row_groups: for a chunk of a run (``common.run.chunks``), the Parquet files of which only
            some row groups belong to it: file path -> row group indices. Other files are whole.
        group_rows: file path -> the rows of each of its row groups (a CSV file: one group), from
            the footers read here; Ray plans its read units from it.
    """

    files: tuple[Path, ...]
    schema: pa.Schema
    num_rows: int
    format: str
    row_groups: Mapping[str, tuple[int, ...]] | None = None
    group_rows: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    partitions: Partitions | None = None

    @property
    def paths(self) -> list[str]:
        return [str(f) for f in self.files]

    @property
    def whole_paths(self) -> list[str]:
        """The files read whole (all of them unless ``row_groups`` names some)."""
        return [p for p in self.paths if p not in (self.row_groups or {})]

    def csv_options(self, columns: Sequence[str] | None = None) -> pacsv.ConvertOptions:
        """How a CSV input is read: with the schema inferred here, never re-inferred per file."""
        return csv_convert_options(self.schema, columns)

    def iter_batches(self, batch_size: int, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The input (or some ``columns``) as record batches of at most ``batch_size`` rows, file by file."""
        for file in self.files:
            with naming_file(file, self.format):
                if self.format == "csv":
                    yield from pacsv.read_csv(file, convert_options=self.csv_options(columns)).to_batches(
                        batch_size
                    )
                elif self.partitions is not None:  # the folders' values appended (common.run.partitions)
                    read = self.partitions.data_columns(columns)
                    for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_size, columns=read):
                        table = self.partitions.attach(pa.Table.from_batches([batch]), str(file), columns)
                        yield from table.combine_chunks().to_batches()
                else:
                    yield from pq.ParquetFile(file).iter_batches(batch_size=batch_size, columns=columns)

    def head(self, rows: int) -> pa.Table:
        """The first ``rows`` rows (fewer when the input is shorter), typed as the input."""
        for batch in self.iter_batches(rows):
            if batch.num_rows:
                return pa.Table.from_batches([batch]).cast(self.schema)
        return self.schema.empty_table()

    def read_columns(self, columns: Sequence[str]) -> pa.Table:
        """Whole columns of every file (the key columns), as one table."""
        if self.format == "csv":
            tables = [pacsv.read_csv(f, convert_options=self.csv_options(columns)) for f in self.files]
            return (
                pa.concat_tables(tables)
                if tables
                else pa.schema([self.schema.field(c) for c in columns]).empty_table()
            )
        if self.partitions is not None and set(columns) & set(self.partitions.names):
            tables = [pa.Table.from_batches([b]) for b in self.iter_batches(1 << 20, columns)]
            return pa.concat_tables(tables).select(list(columns))
        return read_parquet_columns(self.files, columns)


def csv_convert_options(
    schema: pa.Schema | None = None, columns: Sequence[str] | None = None
) -> pacsv.ConvertOptions:
    """The one CSV rule for every backend, Spark's: an empty cell, quoted or not, is null (also in
    a string column), and no other text is (``NA`` stays a string, as Spark reads it)."""
    return pacsv.ConvertOptions(
        column_types=schema,
        include_columns=list(columns or []),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def read_parquet_columns(files: Sequence[Path], columns: Sequence[str]) -> pa.Table:
    """Some columns of a set of Parquet files, as one table (only those columns are decoded); a
    file whose pages cannot be decoded is an InputError naming it."""
    try:
        return pads.dataset([str(f) for f in files], format="parquet").to_table(columns=list(columns))
    except (OSError, pa.ArrowInvalid):
        for file in files:  # which one: the dataset's error does not say
            with naming_file(file):
                pq.read_table(file, columns=list(columns))
        raise


@contextlib.contextmanager
def naming_file(file: Path | str, fmt: str = "parquet") -> Iterator[None]:
    """Turns a decoding error while reading ``file`` (corrupt pages behind a valid footer) into one
    InputError line naming the file."""
    try:
        yield
    except (OSError, pa.ArrowInvalid) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise InputError(f"input file {file}: not a readable {kind} file: {reason}") from None


def list_input_files(path: Path, fmt: str) -> list[Path]:
    """A file, or every data file under a folder (CSV inputs: the ``.csv`` ones): ``common.run.listing``."""
    check_input_root(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"input {path}: not a regular file or folder")
    return data_files(path, ".csv" if fmt == "csv" else None)


def inspect_input(
    path: Path,
    fmt: str,
    required: Sequence[str] = (),
    where: str = "",
    partition_types: Mapping[str, str] | None = None,
) -> InputInfo:
    """Finds the files, checks they share one schema and hold the required columns, counts rows.
    A Parquet folder's ``k=v`` folders become partition columns, and ``where`` (a predicate over
    them) chooses the files read (``common.run.partitions``)."""
    files = list_input_files(path, fmt)
    partitions = discover(path, files, partition_types) if fmt == "parquet" and path.is_dir() else None
    if where:
        if partitions is None:
            raise JobError(f"[input] where: input {path} has no partition folders (k=v) to filter")
        keep = set(partitions.select(where, pq.read_schema(files[0]), "[input] where"))
        files = [f for f in files if str(f) in keep]
        if not files:
            raise InputError(f"input {path}: [input] where = {where!r} selects no partition")
    if fmt == "csv":
        schema, groups = _inspect_csv(files, path)
    else:
        schema, groups = _inspect_parquet(files, path)
    if partitions is not None:
        check_no_overlap(partitions, schema, path)
        schema = pa.schema([*schema, *partitions.schema])
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise InputError(f'input {path}: no column "{missing[0]}" (columns: {", ".join(schema.names)})')
    rows = sum(map(sum, groups.values()))
    return InputInfo(tuple(files), schema, rows, fmt, group_rows=groups, partitions=partitions)


def _inspect_parquet(files: list[Path], path: Path) -> tuple[pa.Schema, dict[str, tuple[int, ...]]]:
    if not files:
        raise InputError(f"input {path}: folder holds no Parquet files")
    schema, groups = None, {}
    for file in files:
        try:
            meta = pq.read_metadata(file)
            file_schema = meta.schema.to_arrow_schema()
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"input file {file}: not a readable Parquet file: {exc}") from None
        file_schema = (
            pa.schema([f.remove_metadata() for f in file_schema]) if file_schema.metadata else file_schema
        )
        file_schema = file_schema.remove_metadata()
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise InputError(
                f"input file {file}: schema differs from {files[0].name}: {_schema_diff(schema, file_schema)}"
            )
        groups[str(file)] = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return schema, groups


def _inspect_csv(files: list[Path], path: Path) -> tuple[pa.Schema, dict[str, tuple[int, ...]]]:
    if not files:
        raise InputError(f"input {path}: folder holds no CSV files")
    schema, groups = None, {}
    for file in files:
        with naming_file(file, "csv"):
            table = pacsv.read_csv(file, convert_options=csv_convert_options())
        _check_csv_cells(table, file)
        if schema is None:
            schema = table.schema
        elif table.schema.names != schema.names:
            raise InputError(f"input file {file}: columns differ from {files[0].name}")
        else:  # widen types inferred differently per file (int in one, float in another)
            try:
                schema = pa.unify_schemas([schema, table.schema], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InputError(
                    f"input file {file}: column types differ from {files[0].name}: "
                    + " ".join(str(exc).split())
                ) from None
        groups[str(file)] = (table.num_rows,)
    return schema, groups


def _check_csv_cells(table: pa.Table, file: Path) -> None:
    """A quoted line break in a cell: Spark reads CSV line by line and would see more rows."""
    import pyarrow.compute as pc

    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) and pc.any(pc.match_substring_regex(column, "[\\r\\n]")).as_py():
            raise InputError(
                f'input file {file}: column "{name}" holds a line break inside a quoted cell, which '
                "Spark reads as two rows; remove the line breaks"
            )


def _schema_diff(a: pa.Schema, b: pa.Schema) -> str:
    for column in a:
        if column.name not in b.names:
            return f'column "{column.name}" missing'
        if not b.field(column.name).type.equals(column.type):
            return f'column "{column.name}" is {b.field(column.name).type}, not {column.type}'
        if b.field(column.name).nullable != column.nullable:
            state = "nullable" if b.field(column.name).nullable else "not nullable"
            return f'column "{column.name}" is {state} here, unlike there'
    extra = [n for n in b.names if n not in a.names]
    return f'extra column "{extra[0]}"' if extra else "column order differs"
