"""Feature transforms as Spark column expressions: the legacy behaviour, and the ground truth.

Only Spark built-ins (no Python UDFs), in as few ``withColumns`` as the dependencies allow. The
Arrow/torch side (``common/model/kernels.py``) reproduces exactly these expressions; where an
expression's behaviour on an edge value matters (null, NaN, -1 for log1p, .5 ties), it is noted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.errors import InputError
from common.spec.transforms import ML_OPS, NUMERIC_OPS, Transform

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = _INTEGRAL + (T.FloatType, T.DoubleType, T.DecimalType, T.BooleanType)


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
    if t.op == "sql":  # Spark runs the expression as written: it defines what it computes
        return {t.output: F.expr(t.params["expr"])}
    fields = {f.name: f.dataType for f in df.schema.fields}
    if t.column not in fields:
        raise InputError(f'input has no column "{t.column}" (needed by the bundle)')
    typ, col, p = fields[t.column], _col(t.column), t.params
    if t.op in ML_OPS or (
        t.op == "impute" and (p.get("cast_to_input") or p.get("missing_value") is not None)
    ):
        _check(t, typ, _NUMERIC, "a numeric column")
        return _ml_columns(t, col.cast("double"), typ)
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
        index = F.coalesce(positions[key], F.lit(len(vocabulary)))  # missing key -> null
        if p.get("handle_invalid") == "error":
            index = F.when(
                positions[key].isNull(),
                _fail(
                    f'transform string_index on column "{t.column}": a null or unseen value, which '
                    'handle_invalid = "error" refuses'
                ),
            ).otherwise(index)
        return {t.output: index.cast("long")}
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


# ---- the Spark ML feature-stage ops (common/model/ml_kernels.py) --------------------------------


def _ml_columns(t: Transform, x: Column, input_type: T.DataType) -> dict[str, Column]:
    """One Spark ML op on ``x`` (the input cast to double); float64 out. Comparisons spell out
    NaN where the stage's Scala code differs from Spark SQL, which orders NaN above every number."""
    p = t.params
    if t.op == "impute":  # Imputer: replace, then cast back to the input's type (ints truncate)
        missing = F.isnan(x) if p.get("missing_value") is None else x == F.lit(p["missing_value"])
        out = F.when(x.isNull() | missing, F.lit(p["value"])).otherwise(x)
        return {t.output: out.cast(input_type).cast("double") if p.get("cast_to_input") else out}
    if t.op == "assemble":  # null -> NaN (keep) or an error; -0.0 -> 0.0 (the vector keeps non-zeros)
        bad = x.isNull() if p.get("from_vector") else x.isNull() | F.isnan(x)
        out = F.when(x.isNull(), F.lit(float("nan"))).otherwise(x + F.lit(0.0))
        if p["handle_invalid"] == "error":
            out = F.when(
                bad, _fail(f'transform assemble on column "{t.column}": a null or NaN value')
            ).otherwise(out)
        return {t.output: out}
    if t.op == "scale_shift":
        out = x - F.lit(p["shift"]) if p.get("shift") is not None else x
        return {t.output: out * F.lit(p["scale"]) if p.get("scale") is not None else out}
    if t.op == "rescale":
        scaled = (x - F.lit(p["min"])) * F.lit(p["factor"]) + F.lit(p["offset"])
        out = F.lit(p["constant"]).cast("double") if p["factor"] == 0 else scaled
        return {t.output: F.when(F.isnan(x), x).otherwise(out)}
    if t.op == "binarize":  # Scala's x > t is false for NaN
        out = F.when(~F.isnan(x) & (x > F.lit(p["threshold"])), F.lit(1.0)).otherwise(F.lit(0.0))
        if p.get("nan_value") is not None:
            out = F.when(F.isnan(x), F.lit(p["nan_value"])).otherwise(out)
        return {t.output: out}
    if t.op == "bucketize_splits":
        return {t.output: _bucketize_splits(t, x)}
    if t.op == "one_hot_index":
        return _one_hot_index(t, x)
    raise AssertionError(f"unhandled op {t.op}")


def _bucketize_splits(t: Transform, x: Column) -> Column:
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
    return bucket.cast("double")


def _below(x: Column, split: float) -> Column:
    """``x < split`` in Java's binary search, which orders -0.0 below 0.0 (Java prints it "-0.0")."""
    if split == 0 and math.copysign(1.0, split) > 0:
        return (x < F.lit(split)) | ((x == F.lit(0.0)) & (x.cast("string") == F.lit("-0.0")))
    return x < F.lit(split)


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
