"""Feature transforms as Spark column expressions: the legacy behaviour, and the ground truth.

Only Spark built-ins (no Python UDFs), one ``withColumns`` per transform. The Arrow/torch side
(``common/spec/transforms.py``) reproduces exactly these expressions; where an expression's behaviour
on an edge value matters (null, NaN, -1 for log1p, .5 ties), it is noted next to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.errors import InputError
from common.spec.transforms import NUMERIC_OPS, Transform

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = _INTEGRAL + (T.FloatType, T.DoubleType, T.DecimalType, T.BooleanType)


def apply_transforms(df: DataFrame, transforms: Sequence[Transform]) -> DataFrame:
    """Adds or replaces each transform's output column(s), in order: DoubleType or LongType."""
    for t in transforms:
        df = df.withColumns(_columns(df, t))
    return df


def _columns(df: DataFrame, t: Transform) -> dict[str, Column]:
    if t.op == "sql":  # Spark runs the expression as written: it defines what it computes
        return {t.output: F.expr(t.params["expr"])}
    fields = {f.name: f.dataType for f in df.schema.fields}
    if t.column not in fields:
        raise InputError(f'input has no column "{t.column}" (needed by the bundle)')
    typ, col, p = fields[t.column], _col(t.column), t.params
    if t.op in NUMERIC_OPS:
        _check(t, typ, _NUMERIC, "a numeric column")
        return {
            t.output: _numeric(t.op, col.cast("double"), p).cast("long" if t.op == "bucketize" else "double")
        }
    if t.op in ("string_index", "one_hot"):
        vocabulary = p["vocabulary"]
        if isinstance(vocabulary[0], str):
            _check(t, typ, (T.StringType,), "a string column (the vocabulary holds strings)")
            key, keys = col, [F.lit(v) for v in vocabulary]
        else:
            _check(t, typ, _INTEGRAL, "an integer column (the vocabulary holds integers)")
            key, keys = col.cast("long"), [F.lit(v).cast("long") for v in vocabulary]
        if t.op == "one_hot":  # a null or unseen key compares as null -> 0 in every column
            return {
                name: F.when(key == k, 1).otherwise(0).cast("long")
                for name, k in zip(t.output_columns(), keys, strict=True)
            }
        positions = F.create_map(*[x for i, k in enumerate(keys) for x in (k, F.lit(i))])
        return {
            t.output: F.coalesce(positions[key], F.lit(len(vocabulary))).cast("long")
        }  # missing key -> null
    if t.op == "hash_bucket":  # hash(null) = 42 (the seed); pmod keeps the bucket non-negative
        _check(t, typ, _INTEGRAL + (T.StringType, T.BooleanType), "a string or integer column")
        return {t.output: F.pmod(F.hash(col), F.lit(p["buckets"])).cast("long")}
    if t.op == "datetime_part":
        _check(t, typ, (T.TimestampType, T.TimestampNTZType), "a timestamp column")
        # A naive (NTZ) timestamp is a UTC instant. A TimestampType goes to wall-clock time through
        # the session time zone (UTC in the harness, so no fall-back hour is ambiguous).
        source = F.lit("UTC") if isinstance(typ, T.TimestampNTZType) else None
        local = F.convert_timezone(source, F.lit(p["timezone"]), col.cast("timestamp_ntz"))
        part = {"hour": F.hour, "day_of_week": F.dayofweek, "month": F.month}[p["part"]]
        return {t.output: part(local).cast("long")}  # dayofweek: 1 = Sunday ... 7 = Saturday
    raise AssertionError(f"unhandled op {t.op}")  # parse_transforms admits only known ops


def _numeric(op: str, x: Column, p: dict) -> Column:
    """One numeric op on a double column; nulls stay null except for impute."""
    if op == "impute":
        return F.when(x.isNull() | F.isnan(x), F.lit(p["value"])).otherwise(x)
    if op == "log1p":
        return F.log1p(x)  # null for x <= -1 (also -inf); NaN stays NaN, +inf stays +inf
    if op == "standard_scale":
        return (x - F.lit(p["mean"])) / F.lit(p["std"])
    if op == "min_max_scale":
        return (x - F.lit(p["min"])) / F.lit(p["max"] - p["min"])
    if op == "clip":  # greatest/least skip nulls, so keep null explicitly; NaN sorts above +inf -> upper
        return F.when(x.isNull(), F.lit(None)).otherwise(
            F.least(F.greatest(x, F.lit(p["lower"])), F.lit(p["upper"]))
        )
    if op == "round":
        return F.round(x, p["scale"])  # HALF_UP on the double's decimal text; NaN and inf unchanged
    if op == "bucketize":  # NaN < b is false for every b, so NaN falls in the last bucket
        bucket = F.when(x.isNull(), F.lit(None))
        for i, bound in enumerate(p["boundaries"]):
            bucket = bucket.when(x < F.lit(bound), F.lit(i))
        return bucket.otherwise(F.lit(len(p["boundaries"])))
    raise AssertionError(f"unhandled op {op}")


def _check(t: Transform, typ: T.DataType, allowed: tuple, needs: str) -> None:
    if not isinstance(typ, allowed):
        raise InputError(
            f'transform {t.op} on column "{t.column}" needs {needs}, but the column is {typ.simpleString()}'
        )


def _col(name: str) -> Column:
    """A column by its exact name, even one with dots or backticks."""
    return F.col("`" + name.replace("`", "``") + "`")
