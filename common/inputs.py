"""Input discovery and checks, done once on the driver before an engine starts.

Both executors read exactly the file list and schema found here, so they see the same rows with
the same types (Spark's and Arrow's CSV inference disagree; a schema inferred once and handed to
both does not). Problems come back as one-line InputErrors naming the file or column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from common.errors import InputError


@dataclass(frozen=True)
class InputInfo:
    """What the driver learnt about the input: the files, their common schema, the row count."""

    files: tuple[Path, ...]
    schema: pa.Schema
    num_rows: int
    format: str

    @property
    def paths(self) -> list[str]:
        return [str(f) for f in self.files]


def list_input_files(path: Path, fmt: str) -> list[Path]:
    """A file, or every data file under a folder (skipping ``_*`` and ``.*`` like Spark does)."""
    if not path.exists():
        raise InputError(f"input {path}: no such file or folder")
    if path.is_file():
        return [path]
    suffix = ".csv" if fmt == "csv" else None
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
        and (suffix is None or p.suffix.lower() == suffix)
    )
    return files


def inspect_input(path: Path, fmt: str, required: Sequence[str] = ()) -> InputInfo:
    """Finds the files, checks they share one schema and hold the required columns, counts rows."""
    files = list_input_files(path, fmt)
    if fmt == "csv":
        schema, rows = _inspect_csv(files, path)
    else:
        schema, rows = _inspect_parquet(files, path)
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise InputError(f'input {path}: no column "{missing[0]}" (columns: {", ".join(schema.names)})')
    return InputInfo(tuple(files), schema, rows, fmt)


def _inspect_parquet(files: list[Path], path: Path) -> tuple[pa.Schema, int]:
    if not files:
        raise InputError(f"input {path}: folder holds no Parquet files")
    schema, rows = None, 0
    for file in files:
        try:
            meta = pq.read_metadata(file)
            file_schema = meta.schema.to_arrow_schema()
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"input file {file}: not a readable Parquet file: {exc}") from None
        file_schema = pa.schema([f.remove_metadata() for f in file_schema]) if file_schema.metadata else file_schema
        file_schema = file_schema.remove_metadata()
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise InputError(f"input file {file}: schema differs from {files[0].name}: {_schema_diff(schema, file_schema)}")
        rows += meta.num_rows
    return schema, rows


def _inspect_csv(files: list[Path], path: Path) -> tuple[pa.Schema, int]:
    if not files:
        raise InputError(f"input {path}: folder holds no CSV files")
    schema, rows = None, 0
    for file in files:
        try:
            table = pacsv.read_csv(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"input file {file}: not a readable CSV file: {exc}") from None
        if schema is None:
            schema = table.schema
        elif table.schema.names != schema.names:
            raise InputError(f"input file {file}: columns differ from {files[0].name}")
        else:  # widen types inferred differently per file (int in one, float in another)
            schema = pa.unify_schemas([schema, table.schema], promote_options="permissive")
        rows += table.num_rows
    return schema, rows


def _schema_diff(a: pa.Schema, b: pa.Schema) -> str:
    for field in a:
        if field.name not in b.names:
            return f'column "{field.name}" missing'
        if not b.field(field.name).type.equals(field.type):
            return f'column "{field.name}" is {b.field(field.name).type}, not {field.type}'
    extra = [n for n in b.names if n not in a.names]
    return f'extra column "{extra[0]}"' if extra else "column order differs"
