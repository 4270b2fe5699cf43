"""The transform ops in the model process: the Arrow/NumPy/torch implementation of each op in
``common.spec.transforms``, all found in ``OPS``.

Spark's column expressions (``spark_backend/transforms.py``) define the semantics; these functions
reproduce them. Numeric ops run in torch on the batch's device; string, hash and time-zone ops run
in Arrow/NumPy on the host. The ops that reproduce Spark ML stages are in ``spark_ml_ops``, and
``sql`` runs its compiled expression through ``common.model.sql_transform``. Spark's surprises are kept on
purpose (``round`` is HALF_UP on a double's shortest decimal text, NaN sorts above +inf,
``log1p(x <= -1)`` is null) so that both executors agree; each op notes its edge cases. torch is
imported inside the ops so that importing this module on the driver does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.errors import InputError
from common.model.spark_ml_ops import OPS as SPARK_ML_OPS
from common.model.torch_column import numeric_op, scalar_like
from common.spec.transforms import Transform
from common.sql.murmur3 import SPARK_SEED, hash_int32, hash_int64, hash_utf8
from common.sql.timezones import utc_offsets

if TYPE_CHECKING:
    from common.model.features import FeatureBatch

#: what the ops compute with, beyond the engines' own libraries: a torch version change can change
#: the result of any bundle with transforms (a parity certificate records it).
LIBRARIES = ("torch",)


def apply_transforms(batch: FeatureBatch, transforms: Sequence[Transform]) -> None:
    """Runs the transforms on ``batch`` in order, each writing its output column(s)."""
    for t in transforms:
        OPS[t.op](batch, t)


# ---- numeric ops: torch on the batch's device -------------------------------------------------


def _impute(batch, t):
    """``value`` for null and NaN, or (``missing_value``) for null and that value, NaN left alone.
    ``cast_to_input`` (Spark's Imputer) casts the result to the input's type: an integer column's
    replacement is truncated, a float32 column's rounded to float32."""
    import torch

    value, missing_value = t.params["value"], t.params.get("missing_value")
    if t.params.get("cast_to_input"):
        value = _in_type(value, batch.arrow_type(t.column), t)

    def compute(x, valid):
        missing = torch.isnan(x) if missing_value is None else x == scalar_like(x, missing_value)
        if valid is not None:
            missing = missing | ~valid
        return torch.where(missing, scalar_like(x, value), x), None

    numeric_op(batch, t, compute)


def _in_type(value: float, typ: pa.DataType, t: Transform) -> float:
    if pa.types.is_integer(typ):
        return float(math.trunc(value))
    if pa.types.is_float32(typ) or pa.types.is_float16(typ):
        return float(np.float32(value))
    if pa.types.is_floating(typ):
        return value
    raise _type_error(t, typ, "an integer or floating-point column (cast_to_input keeps its type)")


def _log1p(batch, t):
    import torch

    def compute(x, valid):  # Spark: null for x <= -1 (incl. -inf); NaN stays NaN
        defined = ~(x <= -1)
        return torch.log1p(
            torch.where(defined, x, torch.zeros_like(x))
        ), defined if valid is None else valid & defined

    numeric_op(batch, t, compute)


def _standard_scale(batch, t):
    numeric_op(
        batch, t, lambda x, v: ((x - scalar_like(x, t.params["mean"])) / scalar_like(x, t.params["std"]), v)
    )


def _min_max_scale(batch, t):
    low, span = t.params["min"], t.params["max"] - t.params["min"]  # the Spark side divides by the same float
    numeric_op(batch, t, lambda x, v: ((x - scalar_like(x, low)) / scalar_like(x, span), v))


def _clip(batch, t):
    import torch

    def compute(x, valid):  # least(greatest(x, lower), upper): ties keep x (so -0.0 stays), NaN -> upper
        lower, upper = scalar_like(x, t.params["lower"]), scalar_like(x, t.params["upper"])
        out = torch.where(x < lower, lower, x)
        out = torch.where(out > upper, upper, out)
        return torch.where(torch.isnan(x), upper, out), valid

    numeric_op(batch, t, compute)


def _bucketize(batch, t):
    import torch

    def compute(x, valid):  # bucket i holds boundaries[i-1] <= x < boundaries[i]; NaN sorts last
        bounds = torch.tensor(t.params["boundaries"], dtype=x.dtype, device=x.device)
        nan = torch.isnan(x)
        index = torch.searchsorted(bounds, torch.where(nan, 0.0, x).contiguous(), right=True)
        index = torch.where(nan, len(bounds), index)
        return index.to(x.dtype), valid

    numeric_op(batch, t, compute)


def _round(batch, t):
    """Spark's ``round(x, scale)`` on doubles: HALF_UP on the double's shortest decimal text, so
    round(2.675, 2) = 2.68; NaN and +-inf unchanged, a zero result is +0.0. The same kernel as the
    sql transform's ``round`` (``common.sql.kernels_round``)."""
    from common.sql.kernels_round import round_double

    numeric_op(batch, t, lambda x, v: (round_double(x, t.params["scale"], "half_up"), v))


# ---- categorical and time ops: Arrow / NumPy on the host ----------------------------------------


def _vocabulary_index(batch: FeatureBatch, t: Transform) -> np.ndarray:
    """Row -> position in the vocabulary, -1 for null or unseen (compared as UTF-8 bytes or int64)."""
    vocabulary = t.params["vocabulary"]
    array = _decoded(batch.arrow(t.column))
    if isinstance(vocabulary[0], str):
        if not _is_string(array.type):
            raise _type_error(t, array.type, "a string column (the vocabulary holds strings)")
        value_set = pa.array(vocabulary, type=array.type)
    else:
        if not _is_hashable_int(array.type):
            raise _type_error(t, array.type, "an integer column (the vocabulary holds integers)")
        array, value_set = array.cast(pa.int64()), pa.array(vocabulary, type=pa.int64())
    index = pc.index_in(array, value_set=value_set)
    return pc.fill_null(index, -1).to_numpy(zero_copy_only=False)


def _string_index(batch, t):
    """Position in the vocabulary; a null or unseen value gets ``len(vocabulary)`` (``keep``) or
    fails the batch (``handle_invalid = "error"``, as Spark's StringIndexer does)."""
    index = _vocabulary_index(batch, t)
    if t.params.get("handle_invalid") == "error" and (index < 0).any():
        row = int(np.flatnonzero(index < 0)[0])
        value = batch.arrow(t.column)[row].as_py()
        what = "a null value" if value is None else f"unseen value {value!r}"
        raise InputError(
            f'transform string_index on column "{t.column}": {what} in {int((index < 0).sum())} row(s), '
            'which handle_invalid = "error" refuses'
        )
    batch.set(t.output, pa.array(np.where(index < 0, len(t.params["vocabulary"]), index).astype(np.int64)))


def _one_hot(batch, t):
    index = _vocabulary_index(batch, t)
    for i, name in enumerate(t.output_columns()):
        batch.set(name, pa.array((index == i).astype(np.int64)))


def _hash_bucket(batch, t):
    """pmod(hash(column), buckets) with Spark's Murmur3 hash: strings by UTF-8 bytes, 8/16/32-bit
    integers and bools as IntegerType, int64 and uint32 (Spark reads it as LongType) as LongType."""
    array = _decoded(batch.arrow(t.column))
    typ = array.type
    if _is_string(typ):
        hashed = hash_utf8(array)
    elif pa.types.is_boolean(typ) or (_is_hashable_int(typ) and typ.bit_width <= 32 and typ != pa.uint32()):
        hashed = hash_int32(pc.fill_null(array.cast(pa.int32()), 0).to_numpy(zero_copy_only=False))
    elif _is_hashable_int(typ):
        hashed = hash_int64(pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False))
    else:
        raise _type_error(t, typ, "a string or integer column")
    if array.null_count and not _is_string(typ):
        hashed = np.where(array.is_null().to_numpy(zero_copy_only=False), np.int32(SPARK_SEED), hashed)
    batch.set(t.output, pa.array(hashed.astype(np.int64) % t.params["buckets"]))  # floor mod = Spark's pmod


def _datetime_part(batch, t):
    """Hour, day of week (1 = Sunday, Spark's dayofweek) or month of each instant in the time zone;
    naive timestamps are UTC instants."""
    array = batch.arrow(t.column)
    if not pa.types.is_timestamp(array.type):
        raise _type_error(t, array.type, "a timestamp column")
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[array.type.unit]
    raw = pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    seconds = raw // per_second  # floor, also before 1970
    try:
        local = seconds + utc_offsets(seconds, t.params["timezone"])
    except ValueError as exc:
        raise InputError(f'transform {t.op} on column "{t.column}": {exc}') from None
    if t.params["part"] == "hour":
        part = local // 3600 % 24
    elif t.params["part"] == "day_of_week":
        part = (local // 86400 + 4) % 7 + 1  # 1970-01-01 was a Thursday (5)
    else:
        months = (local // 86400).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        part = months % 12 + 1
    batch.set(t.output, pa.array(part.astype(np.int64), mask=array.is_null().to_numpy(zero_copy_only=False)))


def _decoded(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array.cast(pa.large_string()) if pa.types.is_string_view(array.type) else array


def _is_string(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)


def _is_hashable_int(typ: pa.DataType) -> bool:
    """Integer types Spark reads as Byte/Short/Integer/LongType (uint64 becomes a decimal there)."""
    return pa.types.is_signed_integer(typ) or typ in (pa.uint8(), pa.uint16(), pa.uint32())


def _type_error(t: Transform, typ: pa.DataType, needs: str) -> InputError:
    return InputError(f'transform {t.op} on column "{t.column}" needs {needs}, but the column is {typ}')


def _sql(batch, t):
    """A Spark SQL expression, compiled (``common.sql``): numbers on the batch's device."""
    from common.model.sql_transform import apply_sql

    apply_sql(batch, t.output, t.params["expr"], t.params["ansi"], t.input_columns())


#: op -> its implementation: every op of ``common.spec.transforms``, the Spark ML ones included.
OPS = {
    "impute": _impute,
    "log1p": _log1p,
    "standard_scale": _standard_scale,
    "min_max_scale": _min_max_scale,
    "clip": _clip,
    "round": _round,
    "bucketize": _bucketize,
    "string_index": _string_index,
    "one_hot": _one_hot,
    "hash_bucket": _hash_bucket,
    "datetime_part": _datetime_part,
    "sql": _sql,
    **SPARK_ML_OPS,
}
