"""Hive-partitioned input (``dt=2024-01-01/region=emea/part-0.parquet``): one set of rules, applied
once on the driver, whose typed values every engine and the reference attach to the rows.

Spark and Ray read the same directories differently (``month=01``: Spark int 1, Ray string "01";
``__HIVE_DEFAULT_PARTITION__``: Spark null, Ray the literal string; Ray parses ``k=v`` folders
above the input too). The rules here are Spark's (``PartitioningUtils.parsePartition`` and
``inferPartitionColumnValue``), since legacy jobs ran on Spark, and a test holds them against
``spark.read.parquet`` of each trap directory:

- only folders below the input path are looked at (Spark's ``basePath``); from a file's folder
  upwards, ``k=v`` names are partition columns until the first other name above one of them;
- names and values are unescaped (``%3A`` -> ``:``); ``__HIVE_DEFAULT_PARTITION__`` is null;
- a column's type is the widest of its values' types, each the first of int, bigint, decimal
  (no fraction), double, timestamp (``yyyy-MM-dd HH:mm:ss[.S]``), date (``yyyy-MM-dd``) that
  parses it, else string; double with bigint or decimal, and unrelated types, widen to string;
  an ``[input.partition_types]`` entry replaces the inference for its column;
- the partition columns come after the files' columns, in folder order.

Refused, naming what is wrong (where Spark fails, or drops rows without a word): files whose
folders give different partition columns (files directly in the root beside ``k=v`` folders
are not read by Spark), an empty value (``k=``), a column twice in one path, a partition
column that is also a column of the files, and a value that does not fit its declared type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from common.errors import InputError, JobError

DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
TYPE_NAMES = {
    "int": pa.int32(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "long": pa.int64(),
    "double": pa.float64(),
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "boolean": pa.bool_(),
}
_INT = re.compile(r"[+-]?\d+")
_DOUBLE = re.compile(r"\s*[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?)\s*")
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ESCAPED = re.compile(r"%([0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Partitions:
    """The partition columns of an input and each file's values.

    Attributes:
        schema: the partition columns, in folder order.
        values: file path -> one value per column (Python values of the column's type; None = null).
    """

    schema: pa.Schema
    values: Mapping[str, tuple[Any, ...]]

    @property
    def names(self) -> list[str]:
        return self.schema.names

    def attach(self, table: pa.Table, path: str, columns: Sequence[str] | None = None) -> pa.Table:
        """``table`` (rows of the file ``path``) with the partition columns appended (of ``columns``,
        when given, only those it names), each the file's constant value."""
        for field, value in zip(self.schema, self.values[str(path)], strict=True):
            if columns is None or field.name in columns:
                table = table.append_column(field, pa.array([value] * table.num_rows, field.type))
        return table

    def data_columns(self, columns: Sequence[str] | None) -> list[str] | None:
        """``columns`` without the partition columns: what to read from the files."""
        return None if columns is None else [c for c in columns if c not in self.names]

    def select(self, where: str, data_schema: pa.Schema, where_label: str) -> list[str]:
        """The files whose partition values satisfy ``where`` (a Spark SQL predicate over the
        partition columns, compiled with ``common.sql``); evaluated here, once, for every engine."""
        from common.sql import SqlCompileError, compile_sql
        from common.sql.typecheck import parse, referenced_columns

        try:
            used = referenced_columns(parse(where))
        except SqlCompileError as exc:
            raise JobError(f"{where_label}: {exc}") from None
        for name in used:
            if name not in self.names:
                what = "a column of the files" if name in data_schema.names else "no column"
                raise JobError(
                    f'{where_label}: "{name}" is {what}; where filters partition columns only '
                    f"({', '.join(self.names) or 'the input has none'})"
                )
        paths = list(self.values)
        table = pa.table(
            {f.name: pa.array([self.values[p][i] for p in paths], f.type) for i, f in enumerate(self.schema)}
        )
        try:
            compiled = compile_sql(
                where, dict(zip(table.column_names, table.schema.types, strict=True)), True
            )
            if compiled.spark_type != "boolean":
                raise SqlCompileError(f"is {compiled.spark_type}, not a condition")
            keep = compiled.evaluate({n: table.column(n).combine_chunks() for n in used}, table.num_rows)
        except SqlCompileError as exc:
            raise JobError(f"{where_label}: {exc}") from None
        return [p for p, ok in zip(paths, keep.to_pylist(), strict=True) if ok]


def discover(
    root: Path, files: Sequence[Path], declared: Mapping[str, str] | None = None
) -> Partitions | None:
    """The partitions of the files under the folder ``root`` (None when no file has any)."""
    declared = dict(declared or {})
    bad = [n for n, t in declared.items() if t.lower() not in TYPE_NAMES]
    if bad:
        raise JobError(
            f'[input.partition_types] "{bad[0]}": type {declared[bad[0]]!r}; one of {", ".join(TYPE_NAMES)}'
        )
    parsed = {str(f): _parse_path(root, f) for f in files}
    layouts: dict[tuple[str, ...], str] = {}
    for file, (_, names, _) in parsed.items():
        layouts.setdefault(names, file)
    bases = {}
    for file, (base, _, _) in parsed.items():
        bases.setdefault(base, file)
    if len(layouts) > 1 or len(bases) > 1:
        (one, two) = list(layouts.values())[:2] if len(layouts) > 1 else list(bases.values())[:2]
        raise InputError(
            f"input {root}: files {one} and {two} lie in different partition layouts "
            f"({_layout(parsed[one][1])} and {_layout(parsed[two][1])}); "
            "every file needs the same k=v folders"
        )
    names = next(iter(layouts), ())
    if not names:
        return None
    unknown = [n for n in declared if n not in names]
    if unknown:
        raise JobError(
            f'[input.partition_types] "{unknown[0]}": no such partition column ({", ".join(names)})'
        )
    fields, columns = [], []
    for i, name in enumerate(names):
        raws = {file: parts[2][i] for file, parts in parsed.items()}
        typ = TYPE_NAMES[declared[name].lower()] if name in declared else _widest(raws.values())
        values = {file: _value(raw, typ, name, file) for file, raw in raws.items()}
        fields.append(pa.field(name, typ))
        columns.append(values)
    return Partitions(pa.schema(fields), {f: tuple(c[f] for c in columns) for f in parsed})


def check_no_overlap(partitions: Partitions, data_schema: pa.Schema, root: Path) -> None:
    """A partition column named like a column of the files (case-insensitively, as Spark) is refused."""
    data = {n.lower(): n for n in data_schema.names}
    clash = next((n for n in partitions.names if n.lower() in data), None)
    if clash is not None:
        raise InputError(
            f'input {root}: partition column "{clash}" is also a column of the files '
            f'("{data[clash.lower()]}")'
        )


def unescape(text: str) -> str:
    """Spark's ``unescapePathName``: each ``%XX`` (two hex digits) is that character."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def _layout(names: tuple[str, ...]) -> str:
    return "/".join(f"{n}=" for n in names) or "no partition folders"


def _parse_path(root: Path, file: Path) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(the folders above the partition folders, the column names, the raw values), walking
    from the file's folder up to the root as Spark's ``parsePartition`` does."""
    folders = list(Path(file).relative_to(root).parts[:-1])
    names: list[str] = []
    raws: list[str] = []
    while folders:
        part = folders[-1]
        if "=" not in part:
            if names:
                break
            folders.pop()
            continue
        name, _, raw = part.partition("=")
        name = unescape(name)
        if not name:
            raise InputError(f"input {file}: folder {part!r} has no partition column name")
        if not raw:
            raise InputError(f"input {file}: folder {part!r} has an empty partition value")
        if name in names:
            raise InputError(f'input {file}: partition column "{name}" appears twice in its path')
        names.insert(0, name)
        raws.insert(0, raw)
        folders.pop()
    return tuple(folders), tuple(names), tuple(raws)


def _infer(raw: str) -> pa.DataType | None:
    """Spark's ``inferPartitionColumnValue`` for one raw (still escaped) value; None = null."""
    if raw == DEFAULT_PARTITION:
        return None
    if _INT.fullmatch(raw):
        number = int(raw)
        if -(2**31) <= number < 2**31:
            return pa.int32()
        if -(2**63) <= number < 2**63:
            return pa.int64()
        if len(raw.lstrip("+-")) <= 38:
            return pa.decimal128(max(1, len(str(abs(number)))), 0)
        return pa.float64()
    if _DOUBLE.fullmatch(raw):
        return pa.float64()
    if _timestamp(unescape(raw)) is not None:
        return pa.timestamp("us", tz="UTC")
    if _date(raw) is not None:
        return pa.date32()
    return pa.string()


def _widest(raws) -> pa.DataType:
    """Spark's ``findWiderTypeForPartitionColumn`` over the values' types; all null -> string."""
    result = None
    for raw in raws:
        typ = _infer(raw)
        if typ is None or result == typ:
            continue
        result = typ if result is None else _wider(result, typ)
    return result or pa.string()


def _wider(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    order = [pa.int32(), pa.int64()]
    if a in order and b in order:
        return max(a, b, key=order.index)
    dec = [t for t in (a, b) if pa.types.is_decimal(t)]
    other = [t for t in (a, b) if not pa.types.is_decimal(t)]
    if len(dec) == 2:
        return pa.decimal128(max(a.precision, b.precision), 0)
    if dec and other and other[0] in order:
        return pa.decimal128(max(dec[0].precision, 10 if other[0] == pa.int32() else 20), 0)
    if pa.float64() in (a, b) and (a == pa.int32() or b == pa.int32()):
        return pa.float64()
    if {str(a), str(b)} == {"date32[day]", "timestamp[us, tz=UTC]"}:
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def _timestamp(text: str) -> dt.datetime | None:
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    *parts, fraction = match.groups()
    try:
        value = dt.datetime(*map(int, parts), tzinfo=dt.UTC)
    except ValueError:
        return None
    return value + dt.timedelta(microseconds=int((fraction or "0").ljust(9, "0")[:6]))


def _date(text: str) -> dt.date | None:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    try:
        return dt.date(*map(int, match.groups()))
    except ValueError:
        return None


def _value(raw: str, typ: pa.DataType, name: str, file: str) -> Any:
    """Spark's ``castPartValueToDesiredType``: the raw folder value as a value of ``typ``."""
    if raw == DEFAULT_PARTITION:
        return None
    text = unescape(raw)
    value: Any = None
    try:
        if pa.types.is_string(typ):
            return text
        if pa.types.is_integer(typ):
            value = int(raw) if _INT.fullmatch(raw) else None
            bits = typ.bit_width
            value = value if value is not None and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else None
        elif pa.types.is_decimal(typ):
            value = decimal.Decimal(raw) if _INT.fullmatch(raw) else None
        elif pa.types.is_floating(typ):
            value = (
                float(raw.strip().rstrip("fFdD").replace("Infinity", "inf"))
                if _DOUBLE.fullmatch(raw)
                else None
            )
        elif pa.types.is_timestamp(typ):
            value = _timestamp(text)
            if value is None and _date(raw) is not None:
                value = dt.datetime.combine(_date(raw), dt.time(), tzinfo=dt.UTC)
        elif pa.types.is_date32(typ):
            value = _date(raw)
        elif pa.types.is_boolean(typ):
            value = {"true": True, "false": False}.get(text.lower())
    except (ValueError, decimal.InvalidOperation):
        value = None
    if value is None:
        raise InputError(f'input {file}: partition value {raw!r} of column "{name}" is not a {typ}')
    return value
