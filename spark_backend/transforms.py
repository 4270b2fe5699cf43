"""Feature transforms as Spark column expressions: the legacy behaviour, and the ground truth.

One function per op, registered under the op's name in ``SPARK_OPS``; the ops are the spec's
(``common.spec.transforms.OPS``), and ``tests/test_transforms.py`` holds the two sets and the torch
side's equal. Only Spark built-ins (no Python UDFs), in as few ``withColumns`` as the dependencies
allow. The model process reproduces exactly these expressions: ``common/model/transform_ops.py`` (the
numeric, string, hash and time ops), ``common/model/spark_ml_ops.py`` (the Spark ML stage ops) and,
for ``op = "sql"``, which Spark runs as written, ``common/model/sql_transform.py``. Where an expression's
behaviour on an edge value matters (null, NaN, -1 for log1p, .5 ties), it is noted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.errors import InputError
from common.spec.transforms import Transform

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = _INTEGRAL + (T.FloatType, T.DoubleType, T.DecimalType, T.BooleanType)

#: An op's columns: (the transform, its input column, that column's Spark type) -> {name: column}.
#: ``op = "sql"`` reads no single column: it gets None for both.
SparkOp = Callable[[Transform, Column | None, T.DataType | None], dict[str, Column]]
#: op name -> its Spark columns.
SPARK_OPS: dict[str, SparkOp] = {}


def apply_transforms(df: DataFrame, transforms: Sequence[Transform]) -> DataFrame:
    """Adds or replaces each transform's output column(s), in order: DoubleType or LongType.

    Consecutive transforms that neither read nor rewrite a column another of them writes go into
    one ``withColumns``: each call re-analyses the whole plan, which cost seconds for an imported
    pipeline's hundreds of per-slot ops; the result is the same as one call per transform.
    """
    group: dict[str, Column] = {}
    for t in transforms:
        if group and ({*t.input_columns(), *t.output_columns()} & group.keys()):
            df, group = df.withColumns(group), {}
        group.update(_columns(df, t))
    return df.withColumns(group) if group else df


def _columns(df: DataFrame, t: Transform) -> dict[str, Column]:
    if not t.column:  # sql: Spark runs the expression as written, naming any missing column itself
        return SPARK_OPS[t.op](t, None, None)
    fields = {f.name: f.dataType for f in df.schema.fields}
    if t.column not in fields:
        raise InputError(f'input has no column "{t.column}" (needed by the bundle)')
    return SPARK_OPS[t.op](t, _col(t.column), fields[t.column])


def _op(name: str) -> Callable[[SparkOp], SparkOp]:
    def register(columns: SparkOp) -> SparkOp:
        SPARK_OPS[name] = columns
        return columns

    return register


def _numeric_op(name: str, out: str = "double") -> Callable:
    """Registers ``fn(x, params) -> Column``, an op on a numeric column cast to double whose result
    is cast to ``out``; nulls stay null."""

    def register(fn: Callable[[Column, dict], Column]) -> Callable[[Column, dict], Column]:
        def columns(t: Transform, col: Column, typ: T.DataType) -> dict[str, Column]:
            _check(t, typ, _NUMERIC, "a numeric column")
            return {t.output: fn(col.cast("double"), t.params).cast(out)}

        SPARK_OPS[name] = columns
        return fn

    return register


@_op("sql")
def _sql(t: Transform, col: None, typ: None) -> dict[str, Column]:
    return {t.output: F.expr(t.params["expr"])}


# ---- numeric ops (common/model/kernels.py) -----------------------------------------------------


@_op("impute")
def _impute(t: Transform, col: Column, typ: T.DataType) -> dict[str, Column]:
    """Null and NaN (or ``missing_value``) become ``value``. Spark ML's Imputer (``cast_to_input``)
    then casts back to the input's type, so an integer column truncates."""
    _check(t, typ, _NUMERIC, "a numeric column")
    x, p = col.cast("double"), t.params
    missing = F.isnan(x) if p.get("missing_value") is None else x == F.lit(p["missing_value"])
    out = F.when(x.isNull() | missing, F.lit(p["value"])).otherwise(x)
    return {t.output: out.cast(typ).cast("double") if p.get("cast_to_input") else out.cast("double")}


@_numeric_op("log1p")
def _log1p(x: Column, p: dict) -> Column:
    return F.log1p(x)  # null for x <= -1 (also -inf); NaN stays NaN, +inf stays +inf


@_numeric_op("standard_scale")
def _standard_scale(x: Column, p: dict) -> Column:
    return (x - F.lit(p["mean"])) / F.lit(p["std"])


@_numeric_op("min_max_scale")
def _min_max_scale(x: Column, p: dict) -> Column:
    return (x - F.lit(p["min"])) / F.lit(p["max"] - p["min"])


@_numeric_op("clip")
def _clip(x: Column, p: dict) -> Column:
    # greatest/least skip nulls, so keep null explicitly; NaN sorts above +inf -> upper
    return F.when(x.isNull(), F.lit(None)).otherwise(
        F.least(F.greatest(x, F.lit(p["lower"])), F.lit(p["upper"]))
    )


@_numeric_op("round")
def _round(x: Column, p: dict) -> Column:
    return F.round(x, p["scale"])  # HALF_UP on the double's decimal text; NaN and inf unchanged


@_numeric_op("bucketize", out="long")
def _bucketize(x: Column, p: dict) -> Column:
    bucket = F.when(x.isNull(), F.lit(None))  # NaN < b is false for every b: NaN is in the last bucket
    for i, bound in enumerate(p["boundaries"]):
        bucket = bucket.when(x < F.lit(bound), F.lit(i))
    return bucket.otherwise(F.lit(len(p["boundaries"])))


# ---- string, hash and time ops (common/model/kernels.py) ---------------------------------------


def _vocabulary_keys(t: Transform, col: Column, typ: T.DataType) -> tuple[Column, list[Column]]:
    """The column and the vocabulary as comparable keys: strings, or integers as longs."""
    vocabulary = t.params["vocabulary"]
    if isinstance(vocabulary[0], str):
        _check(t, typ, (T.StringType,), "a string column (the vocabulary holds strings)")
        return col, [F.lit(v) for v in vocabulary]
    _check(t, typ, _INTEGRAL, "an integer column (the vocabulary holds integers)")
    return col.cast("long"), [F.lit(v).cast("long") for v in vocabulary]


@_op("one_hot")
def _one_hot(t: Transform, col: Column, typ: T.DataType) -> dict[str, Column]:
    key, keys = _vocabulary_keys(t, col, typ)  # a null or unseen key compares as null -> 0 everywhere
    return {
        name: F.when(key == k, 1).otherwise(0).cast("long")
        for name, k in zip(t.output_columns(), keys, strict=True)
    }


@_op("string_index")
def _string_index(t: Transform, col: Column, typ: T.DataType) -> dict[str, Column]:
    key, keys = _vocabulary_keys(t, col, typ)
    positions = F.create_map(*[x for i, k in enumerate(keys) for x in (k, F.lit(i))])
    index = F.coalesce(positions[key], F.lit(len(keys)))  # missing key -> null
    if t.params.get("handle_invalid") == "error":
        index = F.when(
            positions[key].isNull(),
            _fail(
                f'transform string_index on column "{t.column}": a null or unseen value, which '
                'handle_invalid = "error" refuses'
            ),
        ).otherwise(index)
    return {t.output: index.cast("long")}


@_op("hash_bucket")
def _hash_bucket(t: Transform, col: Column, typ: T.DataType) -> dict[str, Column]:
    # hash(null) = 42 (the seed); pmod keeps the bucket non-negative
    _check(t, typ, _INTEGRAL + (T.StringType, T.BooleanType), "a string or integer column")
    return {t.output: F.pmod(F.hash(col), F.lit(t.params["buckets"])).cast("long")}


@_op("datetime_part")
def _datetime_part(t: Transform, col: Column, typ: T.DataType) -> dict[str, Column]:
    _check(t, typ, (T.TimestampType, T.TimestampNTZType), "a timestamp column")
    # A naive (NTZ) timestamp is a UTC instant. A TimestampType goes to wall-clock time through
    # the session time zone (UTC in the harness, so no fall-back hour is ambiguous).
    source = F.lit("UTC") if isinstance(typ, T.TimestampNTZType) else None
    local = F.convert_timezone(source, F.lit(t.params["timezone"]), col.cast("timestamp_ntz"))
    part = {"hour": F.hour, "day_of_week": F.dayofweek, "month": F.month}[t.params["part"]]
    return {t.output: part(local).cast("long")}  # dayofweek: 1 = Sunday ... 7 = Saturday


# ---- the Spark ML feature-stage ops (common/model/spark_ml_ops.py) --------------------------------
# Each gets its input cast to double and gives float64. Comparisons spell out NaN where the stage's
# Scala code differs from Spark SQL, which orders NaN above every number.


def _ml_op(name: str) -> Callable:
    """Registers ``fn(t, x) -> {name: Column}``, a Spark ML op on the numeric input cast to double."""

    def register(fn: Callable[[Transform, Column], dict[str, Column]]) -> Callable:
        def columns(t: Transform, col: Column, typ: T.DataType) -> dict[str, Column]:
            _check(t, typ, _NUMERIC, "a numeric column")
            return fn(t, col.cast("double"))

        SPARK_OPS[name] = columns
        return fn

    return register


@_ml_op("assemble")
def _assemble(t: Transform, x: Column) -> dict[str, Column]:
    """Null -> NaN (keep) or an error; -0.0 -> 0.0 (the vector keeps non-zeros)."""
    p = t.params
    bad = x.isNull() if p.get("from_vector") else x.isNull() | F.isnan(x)
    out = F.when(x.isNull(), F.lit(float("nan"))).otherwise(x + F.lit(0.0))
    if p["handle_invalid"] == "error":
        refused = _fail(f'transform assemble on column "{t.column}": a null or NaN value')
        out = F.when(bad, refused).otherwise(out)
    return {t.output: out}


@_ml_op("scale_shift")
def _scale_shift(t: Transform, x: Column) -> dict[str, Column]:
    p = t.params
    out = x - F.lit(p["shift"]) if p.get("shift") is not None else x
    return {t.output: out * F.lit(p["scale"]) if p.get("scale") is not None else out}


@_ml_op("rescale")
def _rescale(t: Transform, x: Column) -> dict[str, Column]:
    p = t.params
    scaled = (x - F.lit(p["min"])) * F.lit(p["factor"]) + F.lit(p["offset"])
    out = F.lit(p["constant"]).cast("double") if p["factor"] == 0 else scaled
    return {t.output: F.when(F.isnan(x), x).otherwise(out)}


@_ml_op("binarize")
def _binarize(t: Transform, x: Column) -> dict[str, Column]:
    p = t.params  # Scala's x > t is false for NaN
    out = F.when(~F.isnan(x) & (x > F.lit(p["threshold"])), F.lit(1.0)).otherwise(F.lit(0.0))
    if p.get("nan_value") is not None:
        out = F.when(F.isnan(x), F.lit(p["nan_value"])).otherwise(out)
    return {t.output: out}


@_ml_op("bucketize_splits")
def _bucketize_splits(t: Transform, x: Column) -> dict[str, Column]:
    splits, last = t.params["splits"], len(t.params["splits"]) - 2
    nan_bucket = (
        F.lit(float(last + 1))
        if t.params["handle_invalid"] == "keep"
        else _fail(
            f'transform bucketize_splits on column "{t.column}": NaN, which handle_invalid = "error" refuses'
        )
    )
    below = [_below(x, s) for s in splits]
    bucket = (
        F.when(x.isNull(), F.lit(None)).when(F.isnan(x), nan_bucket).when(x == F.lit(splits[-1]), float(last))
    )
    outside = _fail(f'transform bucketize_splits on column "{t.column}": a value outside the splits')
    bucket = bucket.when(below[0] | (x > F.lit(splits[-1])), outside)
    for i in range(1, len(splits)):
        bucket = bucket.when(below[i], F.lit(float(i - 1)))
    return {t.output: bucket.cast("double")}


def _below(x: Column, split: float) -> Column:
    """``x < split`` in Java's binary search, which orders -0.0 below 0.0 (Java prints it "-0.0")."""
    if split == 0 and math.copysign(1.0, split) > 0:
        return (x < F.lit(split)) | ((x == F.lit(0.0)) & (x.cast("string") == F.lit("-0.0")))
    return x < F.lit(split)


@_ml_op("one_hot_index")
def _one_hot_index(t: Transform, x: Column) -> dict[str, Column]:
    size, names = t.params["size"], t.output_columns()
    in_range = (x >= 0) & (x < F.lit(float(size)))  # false for NaN: it is not below size
    index = F.when(in_range, x).otherwise(F.lit(float(size)))
    if t.params["handle_invalid"] == "error":
        bad = _fail(f'transform one_hot_index on column "{t.column}": a negative or unseen value')
        index = F.when(x.isNull() | in_range, index).otherwise(bad)
    hot = [(index >= j) & (index < j + 1) & (index < len(names)) for j in range(len(names))]
    return {
        name: F.when(x.isNull(), F.lit(None))
        .otherwise(F.when(h, F.lit(1.0)).otherwise(F.lit(0.0)))
        .cast("double")
        for name, h in zip(names, hot, strict=True)
    }


def _fail(message: str) -> Column:
    """Spark's ``raise_error``; the runner turns the ``InputError:`` text back into our one-line error."""
    return F.raise_error(F.lit(f"InputError: {message}"))


def _check(t: Transform, typ: T.DataType, allowed: tuple, needs: str) -> None:
    if not isinstance(typ, allowed):
        raise InputError(
            f'transform {t.op} on column "{t.column}" needs {needs}, but the column is {typ.simpleString()}'
        )


def _col(name: str) -> Column:
    """A column by its exact name, even one with dots or backticks."""
    return F.col("`" + name.replace("`", "``") + "`")
