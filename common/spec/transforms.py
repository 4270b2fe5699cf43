"""Feature transforms as declared in ``bundle.toml``: the ops, their parameters and the checks.

Each op's table is a declared dataclass read by the strict TOML reader (``common.spec.toml``), so
a typo fails when the bundle loads, naming the entry and the field. The ops are computed by
``common.model.transform_ops`` (Arrow/torch, in the model process: the Spark ML stage ops in
``common.model.spark_ml_ops``, ``sql`` through ``common.model.sql_transform``) and by
``spark_backend/transforms.py`` (Spark columns, the ground truth).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from common.errors import BundleError
from common.spec.toml import parse_table

NUMERIC_OPS = ("impute", "log1p", "standard_scale", "min_max_scale", "clip", "round", "bucketize")
# Ops that reproduce Spark ML feature stages (``batch-predict import-pipeline``): numeric, float64
# out, in torch on the model's device. A Spark vector is one column per slot, ``<vector>[<i>]``.
ML_OPS = ("assemble", "scale_shift", "rescale", "bucketize_splits", "binarize", "one_hot_index")
TORCH_OPS = NUMERIC_OPS + ML_OPS
MAX_ROUND_SCALE = 22  # 10**22 is the largest power of ten a float64 holds exactly
MAX_BUCKETS = 2**31 - 1  # Spark's hash is an int


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

    def input_columns(self) -> tuple[str, ...]:
        """The columns the transform reads (input columns or earlier transforms' outputs); for
        ``sql`` the columns its expression names, in first-use order."""
        if self.op == "sql":
            from common.sql import referenced_columns

            return tuple(referenced_columns(self.params["expr"]))
        return (self.column,)

    def output_columns(self) -> list[str]:
        """The columns the transform writes."""
        if self.op == "one_hot":
            return [f"{self.output}_{v}" for v in self.params["vocabulary"]]
        if self.op == "one_hot_index":
            p = self.params
            return [
                slot_name(self.output, j)
                for j in range(one_hot_width(p["size"], p["drop_last"], p["handle_invalid"]))
            ]
        return [self.output]

    def output_type(self) -> pa.DataType:
        """The output's Arrow type; for ``sql`` it depends on the input's types
        (``common.sql.output_types.sql_output_types``)."""
        return pa.float64() if self.op in TORCH_OPS and self.op != "bucketize" else pa.int64()


def slot_name(vector: str, index: int) -> str:
    """The scalar column that holds slot ``index`` of a Spark ML vector column."""
    return f"{vector}[{index}]"


def one_hot_width(size: int, drop_last: bool, handle_invalid: str) -> int:
    """OneHotEncoderModel's vector size: one slot more for ``keep``, one fewer for ``drop_last``."""
    keep = handle_invalid == "keep"
    return size + (1 if keep and not drop_last else 0) - (1 if drop_last and not keep else 0)


# ---- each op's table --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Op:
    """The fields every op has: the input column and the output (the input, replaced, by default)."""

    column: str
    output: str | None = None

    def check(self, where: str) -> None:
        for name in ("column", "output"):
            if getattr(self, name) == "":
                raise BundleError(f'{where}: field "{name}" must be a non-empty string')

    def params(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("column", "output")
        }


@dataclass(frozen=True, kw_only=True)
class _Impute(_Op):
    """``value`` replaces null and NaN, or null and ``missing_value`` (NaN then stays); with
    ``cast_to_input`` the result takes the input's type first, as Spark's Imputer does."""

    value: float
    missing_value: float | None = None
    cast_to_input: bool = False


@dataclass(frozen=True, kw_only=True)
class _Log1p(_Op):
    pass


@dataclass(frozen=True, kw_only=True)
class _StandardScale(_Op):
    mean: float
    std: float

    def check(self, where: str) -> None:
        super().check(where)
        if self.std <= 0:
            raise BundleError(f'{where}: field "std" must be positive, got {self.std!r}')


@dataclass(frozen=True, kw_only=True)
class _MinMaxScale(_Op):
    min: float
    max: float

    def check(self, where: str) -> None:
        super().check(where)
        if self.min >= self.max:
            raise BundleError(f'{where}: field "min" ({self.min!r}) must be less than "max" ({self.max!r})')


@dataclass(frozen=True, kw_only=True)
class _Clip(_Op):
    lower: float
    upper: float

    def check(self, where: str) -> None:
        super().check(where)
        if self.lower > self.upper:
            raise BundleError(
                f'{where}: field "lower" ({self.lower!r}) must not exceed "upper" ({self.upper!r})'
            )


@dataclass(frozen=True, kw_only=True)
class _Round(_Op):
    scale: int

    def check(self, where: str) -> None:
        super().check(where)
        if abs(self.scale) > MAX_ROUND_SCALE:
            raise BundleError(
                f'{where}: field "scale" must be between -{MAX_ROUND_SCALE} and {MAX_ROUND_SCALE}, got '
                f"{self.scale}"
            )


@dataclass(frozen=True, kw_only=True)
class _Bucketize(_Op):
    boundaries: tuple[float, ...]

    def check(self, where: str) -> None:
        super().check(where)
        if not self.boundaries:
            raise BundleError(f'{where}: field "boundaries" must be a non-empty list of numbers')
        if any(a >= b for a, b in itertools.pairwise(self.boundaries)):
            raise BundleError(f'{where}: field "boundaries" must be strictly increasing')


@dataclass(frozen=True, kw_only=True)
class _Vocabulary(_Op):
    """``string_index`` and ``one_hot``: a vocabulary of strings or of 64-bit integers, unique."""

    vocabulary: tuple[str | int, ...]

    def check(self, where: str) -> None:
        super().check(where)
        values = self.vocabulary
        if not values:
            raise BundleError(f'{where}: field "vocabulary" must be a non-empty list')
        strings = all(isinstance(v, str) for v in values)
        if not strings and not all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in values):
            raise BundleError(f'{where}: field "vocabulary" must hold only strings or only 64-bit integers')
        if len(set(values)) != len(values):
            duplicate = next(v for i, v in enumerate(values) if v in values[:i])
            raise BundleError(f'{where}: field "vocabulary" lists {duplicate!r} twice')


@dataclass(frozen=True, kw_only=True)
class _StringIndex(_Vocabulary):
    """``string_index``: null and unseen values get the index after the vocabulary (``keep``) or
    fail the batch (``error``, StringIndexer's default)."""

    handle_invalid: Literal["keep", "error"] = "keep"


@dataclass(frozen=True, kw_only=True)
class _Assemble(_Op):
    """One VectorAssembler slot from a scalar column, or (``from_vector``) from a slot of a vector."""

    handle_invalid: Literal["keep", "error"]
    from_vector: bool = False


@dataclass(frozen=True, kw_only=True)
class _ScaleShift(_Op):
    """``(x - shift) * scale``, either part optional (StandardScaler, MaxAbsScaler, ElementwiseProduct)."""

    shift: float | None = None
    scale: float | None = None

    def check(self, where: str) -> None:
        super().check(where)
        if self.shift is None and self.scale is None:
            raise BundleError(f'{where}: needs field "shift" or "scale" (or both)')


@dataclass(frozen=True, kw_only=True)
class _Rescale(_Op):
    """MinMaxScaler: ``(x - min) * factor + offset``; ``constant`` where ``factor`` is 0."""

    min: float
    factor: float
    offset: float
    constant: float


@dataclass(frozen=True, kw_only=True)
class _BucketizeSplits(_Op):
    """Bucketizer: ``splits`` (at least 3, strictly increasing, -inf and inf allowed) bound the buckets."""

    splits: Any
    handle_invalid: Literal["keep", "error"]

    def check(self, where: str) -> None:
        super().check(where)
        splits = self.splits
        numbers = isinstance(splits, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) for v in splits
        )
        if not numbers or len(splits) < 3:
            raise BundleError(f'{where}: field "splits" must be a list of at least 3 numbers (inf allowed)')
        if any(a >= b for a, b in itertools.pairwise(splits)):
            raise BundleError(f'{where}: field "splits" must be strictly increasing')

    def params(self) -> dict[str, Any]:
        return {**super().params(), "splits": tuple(float(v) for v in self.splits)}


@dataclass(frozen=True, kw_only=True)
class _Binarize(_Op):
    """Binarizer: 1.0 where ``x > threshold``; ``nan_value`` is what NaN gives (0.0 by default)."""

    threshold: float
    nan_value: float | None = None


@dataclass(frozen=True, kw_only=True)
class _OneHotIndex(_Op):
    """OneHotEncoder on a category index: ``<output>[j]`` slots (see ``one_hot_width``)."""

    size: int
    drop_last: bool = True
    handle_invalid: Literal["keep", "error"] = "error"

    def check(self, where: str) -> None:
        super().check(where)
        if self.size < 1 or one_hot_width(self.size, self.drop_last, self.handle_invalid) < 1:
            raise BundleError(f'{where}: field "size" must leave at least one slot, got {self.size}')


@dataclass(frozen=True, kw_only=True)
class _HashBucket(_Op):
    buckets: int

    def check(self, where: str) -> None:
        super().check(where)
        if not 1 <= self.buckets <= MAX_BUCKETS:
            raise BundleError(
                f'{where}: field "buckets" must be between 1 and {MAX_BUCKETS}, got {self.buckets}'
            )


@dataclass(frozen=True, kw_only=True)
class _DatetimePart(_Op):
    part: Literal["hour", "day_of_week", "month"]
    timezone: str = "UTC"

    def check(self, where: str) -> None:
        super().check(where)
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise BundleError(
                f'{where}: unknown time zone "{self.timezone}"; use an IANA name such as "Europe/Berlin" '
                'or "UTC"'
            ) from None


@dataclass(frozen=True, kw_only=True)
class _Sql:
    """``op = "sql"``: one Spark SQL expression; Spark runs it, the model process compiles it."""

    output: str
    expr: str

    def check(self, where: str) -> None:
        from common.sql import SqlCompileError, validate_static

        for name in ("output", "expr"):
            if not getattr(self, name).strip():
                raise BundleError(f'{where}: field "{name}" must be a non-empty string')
        try:  # what needs no column types; the rest is typed at preflight against the input
            validate_static(self.expr)
        except SqlCompileError as error:
            raise BundleError(f'{where}: field "expr": {error}') from None


_OP_TABLES: dict[str, type[_Op] | type[_Sql]] = {
    "impute": _Impute,
    "log1p": _Log1p,
    "standard_scale": _StandardScale,
    "min_max_scale": _MinMaxScale,
    "clip": _Clip,
    "round": _Round,
    "bucketize": _Bucketize,
    "string_index": _StringIndex,
    "one_hot": _Vocabulary,
    "hash_bucket": _HashBucket,
    "datetime_part": _DatetimePart,
    "sql": _Sql,
    "assemble": _Assemble,
    "scale_shift": _ScaleShift,
    "rescale": _Rescale,
    "bucketize_splits": _BucketizeSplits,
    "binarize": _Binarize,
    "one_hot_index": _OneHotIndex,
}
OPS = tuple(sorted(_OP_TABLES))


def parse_transforms(raw: Any, where: str) -> list[Transform]:
    """Validates the ``[[transforms]]`` tables of a bundle; BundleError names the entry and field."""
    if not isinstance(raw, (list, tuple)):
        raise BundleError(f"{where}: transforms must be an array of tables ([[transforms]])")
    return [_parse_one(entry, f"{where}: transforms[{i}]") for i, entry in enumerate(raw)]


def _parse_one(entry: Any, where: str) -> Transform:
    if not isinstance(entry, dict):
        raise BundleError(f"{where} must be a table with op and column")
    op = entry.get("op")
    if op is None:
        raise BundleError(f'{where}: missing field "op"; valid ops: {", ".join(OPS)}')
    if op not in _OP_TABLES:
        raise BundleError(f'{where}: unknown op "{op}"; valid: {", ".join(OPS)}')
    fields = {k: v for k, v in entry.items() if k != "op"}
    table = parse_table(_OP_TABLES[op], fields, f'{where} (op "{op}")', BundleError)
    if op == "sql":  # "ansi" is the bundle's sql_ansi (set by parse_bundle)
        return Transform(op=op, column="", output=table.output, params={"expr": table.expr, "ansi": True})
    return Transform(op=op, column=table.column, output=table.output or table.column, params=table.params())


def required_input_columns(transforms: Sequence[Transform], features: Sequence[str]) -> list[str]:
    """The raw input columns a bundle reads: transform inputs not made by an earlier transform,
    then features no transform makes; in first-use order."""
    produced: set[str] = set()
    needed: list[str] = []
    for t in transforms:
        needed += [c for c in t.input_columns() if c not in produced]
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
        columns = {*t.input_columns(), *t.output_columns()}
        if t.op not in (*TORCH_OPS, "sql") and not columns & touched:  # sql: numbers on the device
            host.append(t)
        else:
            rest.append(t)
            touched |= columns
    return host, rest
