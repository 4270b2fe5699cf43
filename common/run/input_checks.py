"""Inputs that one engine would read differently from the others, refused on every backend at load.

The reference and Ray read with pyarrow; Spark reads the same files itself, and fails after it has
started (or, worse, reads other rows) on a few things pyarrow takes in its stride. Each is refused
here, before any engine starts, with one line naming the file or column and the way out, so no
backend accepts an input another one cannot read:

- column names that are equal but for case (Spark resolves names case-insensitively), or that hold
  a dot or a backtick (Spark reads them as a path into a struct, or as quoting);
- nanosecond timestamps (Spark: "Illegal Parquet type ... NANOS") and float16 columns in Parquet;
- file names holding a character Spark's path globbing reads as a pattern (``[]{}*?\\``) or ``:``
  (Hadoop takes it for a URI scheme): ``a[1].parquet`` beside ``a1.parquet`` read ``a1`` twice;
- a key column of a nested type (a list, a struct, a map).

Quoted line breaks inside CSV cells are refused where the CSV is inferred (``common.run.inputs``).
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from common.errors import InputError

#: Characters in a file name that Spark's Hadoop path handling reads as something else.
SPARK_PATH_CHARACTERS = "[]{}*?\\:"


def check_portable_input(inputs, key: tuple[str, ...], where: str) -> None:
    """Raises InputError when ``inputs`` (an ``InputInfo``) holds something Spark reads otherwise."""
    names = inputs.schema.names
    twice = [name for name, n in Counter(names).items() if n > 1]
    if twice:
        raise InputError(f'input {where}: column "{twice[0]}" appears twice')
    folded = Counter(name.lower() for name in names)
    clash = [name for name in names if folded[name.lower()] > 1]
    if clash:
        raise InputError(
            f'input {where}: columns "{clash[0]}" and "{clash[1]}" differ only in case, which Spark '
            "reads as one column; rename one"
        )
    for field in inputs.schema:
        _check_column(field, where, parquet=inputs.format == "parquet")
    for file in inputs.files:
        bad = sorted({c for c in file.name if c in SPARK_PATH_CHARACTERS})
        if bad:
            raise InputError(
                f"input file {file}: its name holds {' '.join(bad)}, which Spark reads as a path "
                "pattern; rename the file"
            )
    for name in key:
        typ = inputs.schema.field(name).type
        if pa.types.is_nested(typ) or pa.types.is_dictionary(typ):
            raise InputError(
                f'input {where}: key column "{name}" is {typ}; '
                "a key must be a number, string, date or timestamp"
            )


def _check_column(field: pa.Field, where: str, parquet: bool) -> None:
    if "." in field.name or "`" in field.name:
        raise InputError(
            f'input {where}: column "{field.name}" holds a dot or a backtick, which Spark reads as a '
            "struct path or quoting; rename it"
        )
    if not parquet:  # a CSV's types are the driver's inference (timestamps in ns), which Spark is given
        return
    for typ in _leaf_types(field.type):
        if pa.types.is_timestamp(typ) and typ.unit == "ns":
            raise InputError(
                f'input {where}: column "{field.name}" holds nanosecond timestamps, which Spark cannot '
                'read; write them in microseconds (pyarrow: coerce_timestamps="us")'
            )
        if pa.types.is_float16(typ):
            raise InputError(
                f'input {where}: column "{field.name}" is float16, which Spark cannot read; '
                "write it as float32"
            )


def _leaf_types(typ: pa.DataType):
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        yield from _leaf_types(typ.value_type)
    elif pa.types.is_struct(typ):
        for i in range(typ.num_fields):
            yield from _leaf_types(typ.field(i).type)
    elif pa.types.is_map(typ):
        yield from _leaf_types(typ.key_type)
        yield from _leaf_types(typ.item_type)
    else:
        yield typ
