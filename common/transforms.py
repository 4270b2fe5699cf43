"""Feature transforms declared in ``bundle.toml``: parsing, and the Arrow/NumPy/torch implementation.

Spark's column expressions (``spark_backend/transforms.py``) define the semantics; this module
reproduces them inside the model process. Numeric ops run in torch on the batch's device; string,
hash and time-zone ops run in Arrow/NumPy on the host. Spark's surprises are kept on purpose
(``round`` is HALF_UP on a double's shortest decimal text, NaN sorts above +inf, ``log1p(x <= -1)``
is null) so that both executors agree; each op notes its edge cases. torch is imported inside the
kernels so that parsing a bundle on the driver does not pay for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.errors import BundleError, InputError
from common.murmur3 import SPARK_SEED, hash_int32, hash_int64, hash_utf8
from common.timezones import utc_offsets

if TYPE_CHECKING:
    from common.features import FeatureBatch

NUMERIC_OPS = ("impute", "log1p", "standard_scale", "min_max_scale", "clip", "round", "bucketize")
OPS = tuple(sorted(NUMERIC_OPS + ("string_index", "one_hot", "hash_bucket", "datetime_part")))
DATETIME_PARTS = ("hour", "day_of_week", "month")
MAX_ROUND_SCALE = 22  # 10**22 is the largest power of ten a float64 holds exactly
MAX_BUCKETS = 2**31 - 1  # Spark's hash is an int

# Parameters of each op: name -> kind (checked by _param); "?" marks an optional one.
_PARAMS: dict[str, dict[str, str]] = {
    "impute": {"value": "number"},
    "log1p": {},
    "standard_scale": {"mean": "number", "std": "number"},
    "min_max_scale": {"min": "number", "max": "number"},
    "clip": {"lower": "number", "upper": "number"},
    "round": {"scale": "int"},
    "bucketize": {"boundaries": "numbers"},
    "string_index": {"vocabulary": "vocabulary"},
    "one_hot": {"vocabulary": "vocabulary"},
    "hash_bucket": {"buckets": "int"},
    "datetime_part": {"part": "string", "timezone": "string?"},
}


@dataclass(frozen=True)
class Transform:
    """One validated transform.

    Attributes:
        op: one of ``OPS``.
        column: the input column.
        output: the output column (``column`` by default: replaced in place); for ``one_hot``
            the prefix of the ``<output>_<value>`` columns.
        params: the op's parameters, validated (lists become tuples, numbers floats).
    """

    op: str
    column: str
    output: str
    params: Mapping[str, Any]

    def output_columns(self) -> list[str]:
        if self.op == "one_hot":
            return [f"{self.output}_{v}" for v in self.params["vocabulary"]]
        return [self.output]

    def output_type(self) -> pa.DataType:
        return pa.float64() if self.op in NUMERIC_OPS and self.op != "bucketize" else pa.int64()


def parse_transforms(raw: Any, where: str) -> list[Transform]:
    """Validates the ``[[transforms]]`` tables of a bundle; BundleError names the entry and field."""
    if not isinstance(raw, list):
        raise BundleError(f"{where}: transforms must be an array of tables ([[transforms]])")
    return [_parse_one(entry, f"{where}: transforms[{i}]") for i, entry in enumerate(raw)]


def _parse_one(entry: Any, where: str) -> Transform:
    if not isinstance(entry, dict):
        raise BundleError(f"{where} must be a table with op and column")
    op = entry.get("op")
    if op is None:
        raise BundleError(f'{where}: missing field "op"; valid ops: {", ".join(OPS)}')
    if op not in OPS:
        raise BundleError(f'{where}: unknown op "{op}"; valid: {", ".join(OPS)}')
    where = f'{where} (op "{op}")'
    spec = _PARAMS[op]
    valid_fields = sorted({"column", "output", *spec})
    for name in entry:
        if name != "op" and name not in valid_fields:
            raise BundleError(f'{where}: unknown field "{name}"; valid: {", ".join(valid_fields)}')
    column = _param(entry, "column", "string", where)
    output = _param(entry, "output", "string?", where) or column
    params = {name: _param(entry, name, kind, where) for name, kind in spec.items()}
    params = {k: v for k, v in params.items() if v is not None}
    _check_op(op, params, where)
    return Transform(op=op, column=column, output=output, params=params)


def _param(entry: dict, name: str, kind: str, where: str) -> Any:
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if name not in entry:
        if optional:
            return None
        raise BundleError(f'{where}: missing field "{name}"')
    value = entry[name]
    if kind == "string":
        if not isinstance(value, str) or not value:
            raise BundleError(f'{where}: field "{name}" must be a non-empty string, got {value!r}')
        return value
    if kind == "int":
        if not _is_int(value):
            raise BundleError(f'{where}: field "{name}" must be an integer, got {value!r}')
        return value
    if kind == "number":
        return _number(value, f'{where}: field "{name}"')
    if kind == "numbers":
        if not isinstance(value, list) or not value:
            raise BundleError(f'{where}: field "{name}" must be a non-empty list of numbers')
        return tuple(_number(v, f'{where}: field "{name}"') for v in value)
    # vocabulary: all strings or all integers, unique
    if not isinstance(value, list) or not value:
        raise BundleError(f'{where}: field "{name}" must be a non-empty list')
    if not (all(isinstance(v, str) for v in value) or all(_is_int(v) and -2**63 <= v < 2**63 for v in value)):
        raise BundleError(f'{where}: field "{name}" must hold only strings or only 64-bit integers')
    if len(set(value)) != len(value):
        duplicate = next(v for i, v in enumerate(value) if v in value[:i])
        raise BundleError(f'{where}: field "{name}" lists {duplicate!r} twice')
    return tuple(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BundleError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise BundleError(f"{what} must be finite, got {value!r}")
    return float(value)


def _check_op(op: str, p: dict, where: str) -> None:
    """Checks between parameters, so that no transform can divide by zero or be empty."""
    problem = None
    if op == "standard_scale" and p["std"] <= 0:
        problem = f'field "std" must be positive, got {p["std"]!r}'
    elif op == "min_max_scale" and p["min"] >= p["max"]:
        problem = f'field "min" ({p["min"]!r}) must be less than "max" ({p["max"]!r})'
    elif op == "clip" and p["lower"] > p["upper"]:
        problem = f'field "lower" ({p["lower"]!r}) must not exceed "upper" ({p["upper"]!r})'
    elif op == "round" and abs(p["scale"]) > MAX_ROUND_SCALE:
        problem = f'field "scale" must be between -{MAX_ROUND_SCALE} and {MAX_ROUND_SCALE}, got {p["scale"]}'
    elif op == "bucketize" and any(a >= b for a, b in zip(p["boundaries"], p["boundaries"][1:])):
        problem = 'field "boundaries" must be strictly increasing'
    elif op == "hash_bucket" and not 1 <= p["buckets"] <= MAX_BUCKETS:
        problem = f'field "buckets" must be between 1 and {MAX_BUCKETS}, got {p["buckets"]}'
    elif op == "datetime_part":
        if p["part"] not in DATETIME_PARTS:
            problem = f'unknown part "{p["part"]}"; valid: {", ".join(DATETIME_PARTS)}'
        else:
            p.setdefault("timezone", "UTC")
            problem = _timezone_problem(p["timezone"])
    if problem:
        raise BundleError(f"{where}: {problem}")


def _timezone_problem(name: str) -> str | None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f'unknown time zone "{name}"; use an IANA name such as "Europe/Berlin" or "UTC"'
    return None


def required_input_columns(transforms: Sequence[Transform], features: Sequence[str]) -> list[str]:
    """The raw input columns a bundle reads: transform inputs not made by an earlier transform,
    then features no transform makes; in first-use order."""
    produced: set[str] = set()
    needed: list[str] = []
    for t in transforms:
        if t.column not in produced:
            needed.append(t.column)
        produced.update(t.output_columns())
    needed += [f for f in features if f not in produced]
    return list(dict.fromkeys(needed))


def split_host_stage(transforms: Sequence[Transform]) -> tuple[list[Transform], list[Transform]]:
    """Splits off the host ops (string, hash, time zone: Arrow on the CPU) that can run in a CPU
    operator before the model's, leaving the rest in order for the model's device.

    A host op moves ahead only if no op left behind before it reads or writes any column it
    reads or writes, so running ``host`` then ``rest`` gives exactly what running all in order does.
    """
    host, rest, touched = [], [], set()
    for t in transforms:
        columns = {t.column, *t.output_columns()}
        if t.op not in NUMERIC_OPS and not columns & touched:
            host.append(t)
        else:
            rest.append(t)
            touched |= columns
    return host, rest


def apply_transforms(batch: FeatureBatch, transforms: Sequence[Transform]) -> None:
    """Runs the transforms on ``batch`` in order, each writing its output column(s)."""
    for t in transforms:
        _KERNELS[t.op](batch, t)


# ---- numeric ops: torch on the batch's device -------------------------------------------------


def _numeric(batch: FeatureBatch, t: Transform, compute) -> None:
    from common.features import TensorColumn

    column = batch.tensor(t.column)
    values, valid = compute(column.values, column.valid)
    batch.set(t.output, TensorColumn(values, valid, t.output_type()))


def _scalar(x, value: float):
    """A 0-d tensor on ``x``'s device: CUDA turns division by a Python scalar into a multiplication
    by its reciprocal, which can differ from Spark's division in the last bit."""
    import torch

    return torch.tensor(value, dtype=x.dtype, device=x.device)


def _impute(batch, t):
    import torch

    def compute(x, valid):
        missing = torch.isnan(x) if valid is None else torch.isnan(x) | ~valid
        return torch.where(missing, _scalar(x, t.params["value"]), x), None

    _numeric(batch, t, compute)


def _log1p(batch, t):
    import torch

    def compute(x, valid):  # Spark: null for x <= -1 (incl. -inf); NaN stays NaN
        defined = ~(x <= -1)
        return torch.log1p(torch.where(defined, x, torch.zeros_like(x))), defined if valid is None else valid & defined

    _numeric(batch, t, compute)


def _standard_scale(batch, t):
    _numeric(batch, t, lambda x, v: ((x - _scalar(x, t.params["mean"])) / _scalar(x, t.params["std"]), v))


def _min_max_scale(batch, t):
    low, span = t.params["min"], t.params["max"] - t.params["min"]  # the Spark side divides by the same float
    _numeric(batch, t, lambda x, v: ((x - _scalar(x, low)) / _scalar(x, span), v))


def _clip(batch, t):
    import torch

    def compute(x, valid):  # least(greatest(x, lower), upper): ties keep x (so -0.0 stays), NaN -> upper
        lower, upper = _scalar(x, t.params["lower"]), _scalar(x, t.params["upper"])
        out = torch.where(x < lower, lower, x)
        out = torch.where(out > upper, upper, out)
        return torch.where(torch.isnan(x), upper, out), valid

    _numeric(batch, t, compute)


def _bucketize(batch, t):
    import torch

    def compute(x, valid):  # bucket i holds boundaries[i-1] <= x < boundaries[i]; NaN sorts last
        bounds = torch.tensor(t.params["boundaries"], dtype=x.dtype, device=x.device)
        nan = torch.isnan(x)
        index = torch.searchsorted(bounds, torch.where(nan, 0.0, x).contiguous(), right=True)
        index = torch.where(nan, len(bounds), index)
        return index.to(x.dtype), valid

    _numeric(batch, t, compute)


def _round(batch, t):
    _numeric(batch, t, lambda x, v: (round_half_up(x, t.params["scale"]), v))


def round_half_up(x, scale: int):
    """Spark's ``round(x, scale)`` on doubles: BigDecimal(Double.toString(x)).setScale(HALF_UP).

    Rounding the shortest decimal text, not the binary value, makes round(2.675, 2) = 2.68 and
    round(0.285, 2) = 0.29. Most values are far from a tie and round in torch; the few whose
    scaled value lies within a few ulps of .5 are redone exactly on the host with ``decimal``.
    NaN and +-inf are returned unchanged and a zero result is +0.0, as in Spark.
    """
    import torch

    power = _scalar(x, 10.0 ** abs(scale))  # exact for |scale| <= 22, and a true division on CUDA
    scaled = (x * power if scale >= 0 else x / power).abs()
    whole = torch.floor(scaled)
    frac = scaled - whole
    rounded = torch.copysign(whole + (frac > 0.5).to(x.dtype), x)
    rounded = (rounded / power if scale >= 0 else rounded * power) + 0.0  # + 0.0 turns -0.0 into 0.0
    unchanged = ~torch.isfinite(x) | (scaled >= 2.0**54)  # such a double has no digits below 10**-scale
    # |decimal text * 10**scale - scaled| < scaled * 2**-51; wider than that from .5 is not a tie.
    near_tie = ~unchanged & ((frac - 0.5).abs() <= scaled * 2.0**-50)
    out = torch.where(unchanged, x, rounded)
    if bool(near_tie.any()):
        rows = near_tie.nonzero().squeeze(1)
        exact = [_round_decimal(v, scale) for v in x[rows].cpu().tolist()]
        out[rows] = torch.tensor(exact, dtype=x.dtype).to(x.device)
    return out


def _round_decimal(value: float, scale: int) -> float:
    with localcontext() as ctx:
        ctx.prec = 400  # a double has at most 309 integer digits, plus 22 decimals
        quantum = Decimal(1).scaleb(-scale)
        return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP)) + 0.0


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
    index = _vocabulary_index(batch, t)
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


_KERNELS = {
    "impute": _impute, "log1p": _log1p, "standard_scale": _standard_scale, "min_max_scale": _min_max_scale,
    "clip": _clip, "round": _round, "bucketize": _bucketize, "string_index": _string_index,
    "one_hot": _one_hot, "hash_bucket": _hash_bucket, "datetime_part": _datetime_part,
}
