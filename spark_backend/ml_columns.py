"""Spark-column twins of the Spark ML feature-stage ops (``common/model/ml_kernels.py``).

Spark built-ins only, so the Spark executor runs an imported pipeline's features as Spark SQL
rather than the original stages' UDFs. ``handle_invalid = "error"`` becomes ``raise_error`` with
an ``InputError:`` message, which the runner turns back into our one-line error.
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F

from common.model.ml_kernels import one_hot_index_columns


def _fail(message: str) -> Column:
    return F.raise_error(F.lit(f"InputError: {message}"))


def _nan() -> Column:
    return F.lit(float("nan")).cast("double")


def _is_negative_zero(x: Column) -> Column:
    """-0.0 (``x = 0`` cannot tell it from 0.0): Java prints it as "-0.0"."""
    return (x == 0.0) & (x.cast("string") == F.lit("-0.0"))


def ml_columns(t, col: Column, input_type) -> dict[str, Column]:
    """The output column(s) of one Spark ML op on input column ``col`` of Spark type ``input_type``."""
    x, p = col.cast("double"), t.params
    if t.op == "assemble":
        missing = x.isNull() if p.get("from_vector") else x.isNull() | F.isnan(x)
        out = F.when(x.isNull(), _nan()).otherwise(x + F.lit(0.0))
        if p["handle_invalid"] == "error":
            out = F.when(missing, _fail(f'transform assemble on column "{t.column}": null or NaN')).otherwise(
                out
            )
        return {t.output: out}
    if t.op == "scale_shift":
        out = x - F.lit(p["shift"]) if p.get("shift") is not None else x
        return {t.output: out * F.lit(p["scale"]) if p.get("scale") is not None else out}
    if t.op == "rescale":
        out = (
            F.lit(p["constant"])
            if p["factor"] == 0
            else (x - F.lit(p["min"])) * F.lit(p["factor"]) + F.lit(p["offset"])
        )
        return {t.output: F.when(F.isnan(x), x).otherwise(out.cast("double"))}
    if t.op == "bucketize_splits":
        return {t.output: _bucketize(t, x)}
    if t.op == "binarize":
        # Spark SQL orders NaN above every number; Binarizer's Scala test (x > t) is false for NaN
        out = F.when(~F.isnan(x) & (x > F.lit(p["threshold"])), F.lit(1.0)).otherwise(F.lit(0.0))
        if p.get("nan_value") is not None:
            out = F.when(F.isnan(x), F.lit(p["nan_value"])).otherwise(out)
        return {t.output: out}
    if t.op == "one_hot_index":
        return _one_hot(t, x)
    if t.op == "impute":
        return {t.output: _impute(t, x, input_type)}
    raise AssertionError(f"unhandled op {t.op}")


def _bucketize(t, x: Column) -> Column:
    splits, keep = t.params["splits"], t.params["handle_invalid"] == "keep"
    last = len(splits) - 2
    bucket = F.when(x.isNull(), F.lit(None))
    bucket = bucket.when(
        F.isnan(x),
        F.lit(float(last + 1))
        if keep
        else _fail(
            f'transform bucketize_splits on column "{t.column}": NaN, which handle_invalid = "error" refuses'
        ),
    )
    bucket = bucket.when(x == F.lit(splits[-1]), F.lit(float(last)))
    below = [_below(x, s) for s in splits]
    outside = below[0] | (x > F.lit(splits[-1]))
    bucket = bucket.when(
        outside, _fail(f'transform bucketize_splits on column "{t.column}": value outside the splits')
    )
    for i in range(1, len(splits)):
        bucket = bucket.when(below[i], F.lit(float(i - 1)))
    return bucket.cast("double")


def _below(x: Column, split: float) -> Column:
    """``x < split`` in Java's binarySearch order, where -0.0 sorts below 0.0."""
    if split == 0 and math.copysign(1.0, split) > 0:
        return (x < F.lit(split)) | _is_negative_zero(x)
    return x < F.lit(split)


def _one_hot(t, x: Column) -> dict[str, Column]:
    p = t.params
    size, names = p["size"], one_hot_index_columns(t)
    in_range = (x >= 0) & (x < F.lit(float(size)))
    index = F.when(in_range, x).otherwise(F.lit(float(size)))
    if p["handle_invalid"] == "error":
        index = F.when(x.isNull() | in_range, index).otherwise(
            _fail(f'transform one_hot_index on column "{t.column}": negative or unseen value')
        )
    return {
        name: F.when(x.isNull(), F.lit(None))
        .otherwise(
            F.when((index >= j) & (index < j + 1) & (index < len(names)), F.lit(1.0)).otherwise(F.lit(0.0))
        )
        .cast("double")
        for j, name in enumerate(names)
    }


def _impute(t, x: Column, input_type) -> Column:
    """Imputer: null and missing values replaced, then cast to the input's type (Spark's Imputer
    keeps the column's type, so an integer column's surrogate is truncated)."""
    p = t.params
    missing = F.isnan(x) if p.get("missing_value") is None else x == F.lit(p["missing_value"])
    out = F.when(x.isNull() | missing, F.lit(p["value"])).otherwise(x)
    return out.cast(input_type).cast("double") if p.get("cast_to_input") else out
