"""Spark SQL types the compiler knows, their Arrow and torch forms, and Spark's type coercion.

Only the types a feature expression needs: int, bigint, float, double, string, boolean, date and
timestamp. ``decimal`` exists for literals alone (Spark types ``1.5`` as DECIMAL(2,1)); a
computation that would stay decimal is refused with a hint to cast. ``void`` is the untyped NULL.
"""

from __future__ import annotations

import pyarrow as pa

INT, BIGINT, FLOAT, DOUBLE = "int", "bigint", "float", "double"
STRING, BOOLEAN, DATE, TIMESTAMP = "string", "boolean", "date", "timestamp"
DECIMAL, VOID = "decimal", "void"

INTEGRAL = (INT, BIGINT)
FRACTIONAL = (FLOAT, DOUBLE)
NUMERIC = INTEGRAL + FRACTIONAL
TENSOR_TYPES = NUMERIC + (BOOLEAN, DATE, TIMESTAMP)  # held as torch tensors; strings stay Arrow

# The Arrow type of each result type (the output column's type).
ARROW_TYPES = {
    INT: pa.int32(),
    BIGINT: pa.int64(),
    FLOAT: pa.float32(),
    DOUBLE: pa.float64(),
    STRING: pa.string(),
    BOOLEAN: pa.bool_(),
    DATE: pa.date32(),
    TIMESTAMP: pa.timestamp("us", tz="UTC"),
}
# torch dtype names: a date is int32 days since 1970-01-01, a timestamp int64 microseconds (UTC).
TORCH_DTYPES = {
    INT: "int32",
    BIGINT: "int64",
    FLOAT: "float32",
    DOUBLE: "float64",
    BOOLEAN: "bool",
    DATE: "int32",
    TIMESTAMP: "int64",
}
INT_RANGE = {INT: (-(2**31), 2**31 - 1), BIGINT: (-(2**63), 2**63 - 1)}
_NUMERIC_RANK = {INT: 0, BIGINT: 1, FLOAT: 2, DOUBLE: 3}


def sql_type_of_arrow(typ: pa.DataType) -> str | None:
    """Spark's type for an input column of this Arrow type, or None when the compiler has none."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    for sql, arrow in (
        (INT, pa.int32()),
        (BIGINT, pa.int64()),
        (FLOAT, pa.float32()),
        (DOUBLE, pa.float64()),
    ):
        if typ == arrow:
            return sql
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return STRING
    if pa.types.is_boolean(typ):
        return BOOLEAN
    if pa.types.is_date32(typ) or pa.types.is_date64(typ):
        return DATE
    if pa.types.is_timestamp(typ) and typ.tz is not None:
        return TIMESTAMP
    return None


def wider(a: str, b: str, ansi: bool) -> str | None:
    """The common type Spark coerces ``a`` and ``b`` to, or None when the compiler refuses the mix.

    Mixing strings with numbers is refused: Spark's answer depends on ANSI mode (a double with ANSI
    off, a bigint with it on), so an explicit CAST says what is meant. Under ANSI a bigint meeting a
    float widens to double (a float cannot hold every bigint); with ANSI off it stays float.
    """
    if a == b:
        return a
    if a == VOID:
        return b
    if b == VOID:
        return a
    if a in NUMERIC and b in NUMERIC:
        if ansi and FLOAT in (a, b) and {a, b} & {INT, BIGINT}:
            return DOUBLE
        return a if _NUMERIC_RANK[a] > _NUMERIC_RANK[b] else b
    if {a, b} in ({DECIMAL, FLOAT}, {DECIMAL, DOUBLE}):
        return DOUBLE
    if {a, b} in ({DECIMAL, INT}, {DECIMAL, BIGINT}):
        return DECIMAL  # the caller refuses it with the CAST hint
    if {a, b} == {DATE, TIMESTAMP}:
        return TIMESTAMP
    return None
