"""The transform ops that reproduce Spark ML feature stages, one scalar column each.

``batch-predict import-pipeline`` turns each feature stage of a saved ``PipelineModel`` into these
ops (``ML_OPS`` in ``common.spec.transforms``): a vector column becomes one column per slot, named
``<vector>[<i>]``, so every op stays a single-column op; ``impute`` and ``string_index`` carry
Imputer's and StringIndexer's options in ``common.model.transform_ops``. Each op follows the Spark ML
code it replaces, edge values included, and has a Spark-column twin in
``spark_backend/transforms.py``; the differential tests run both against the real Spark stage.
Spark's ``handleInvalid = "error"`` becomes an ``InputError`` naming the column and the bad value
(a row's fault: dead-lettered under ``on_error = "dead_letter"``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pyarrow as pa

from common.errors import InputError
from common.model.torch_column import numeric_op, scalar_like
from common.spec.transforms import Transform

if TYPE_CHECKING:
    from common.model.features import FeatureBatch


def _first(x, rows) -> float:
    return float(x[rows.nonzero()[0, 0]].item())


def assemble(batch: FeatureBatch, t: Transform) -> None:
    """One VectorAssembler slot. A scalar input is cast to double: null or NaN raise under
    ``error`` (null becomes NaN under ``keep``). A slot of a vector input raises only for a null
    vector. -0.0 becomes 0.0 (the assembler keeps non-zeros only)."""
    import torch

    from_vector = t.params.get("from_vector", False)

    def compute(x, valid):
        missing = torch.zeros_like(x, dtype=torch.bool) if valid is None else ~valid
        bad = missing if from_vector else missing | torch.isnan(x)
        if t.params["handle_invalid"] == "error" and bool(bad.any()):
            what = "null" if bool(missing.any()) else "NaN"
            raise InputError(
                f'transform assemble on column "{t.column}": {what} in {int(bad.sum())} row(s), which '
                f'VectorAssembler handleInvalid = "error" refuses'
            )
        out = torch.where(missing, scalar_like(x, math.nan), x) + 0.0
        return out, None

    numeric_op(batch, t, compute)


def scale_shift(batch: FeatureBatch, t: Transform) -> None:
    """``(x - shift) * scale``, either part optional: StandardScaler (shift = mean, scale = 1 / std,
    0 for a zero std), MaxAbsScaler (scale = 1 / maxAbs) and ElementwiseProduct (scale)."""
    shift, scale = t.params.get("shift"), t.params.get("scale")

    def compute(x, valid):
        out = x - scalar_like(x, shift) if shift is not None else x
        return (out * scalar_like(x, scale) if scale is not None else out), valid

    numeric_op(batch, t, compute)


def rescale(batch: FeatureBatch, t: Transform) -> None:
    """MinMaxScalerModel: ``(x - min) * factor + offset``; ``constant`` where the feature was
    constant in training (``factor == 0``); NaN stays NaN."""
    import torch

    p = t.params

    def compute(x, valid):
        if p["factor"] == 0:
            out = torch.full_like(x, p["constant"])
        else:
            out = (x - scalar_like(x, p["min"])) * scalar_like(x, p["factor"]) + scalar_like(x, p["offset"])
        return torch.where(torch.isnan(x), x, out), valid

    numeric_op(batch, t, compute)


def bucketize_splits(batch: FeatureBatch, t: Transform) -> None:
    """Bucketizer: bucket i holds splits[i] <= x < splits[i+1], the last split is inclusive; a
    value outside the splits raises; NaN raises under ``error``, goes to an extra last bucket
    under ``keep``. Java's binary search orders -0.0 below 0.0, so -0.0 falls below a 0.0 split."""
    import torch

    splits = t.params["splits"]
    last = len(splits) - 2  # index of the last bucket

    def compute(x, valid):
        bounds = torch.tensor(splits, dtype=x.dtype, device=x.device)
        nan = torch.isnan(x)
        index = torch.searchsorted(bounds, torch.where(nan, 0.0, x).contiguous(), right=True) - 1
        index = torch.where(x == bounds[-1], last, index)
        zero = [i for i, s in enumerate(splits) if s == 0 and math.copysign(1.0, s) > 0]
        if zero:
            negative_zero = (x == 0) & torch.signbit(x)
            index = torch.where(negative_zero, zero[0] - 1, index)
        considered = nan.logical_not() if valid is None else valid & ~nan
        outside = considered & ((index < 0) | (index > last))
        if bool(outside.any()):
            raise InputError(
                f'transform bucketize_splits on column "{t.column}": value {_first(x, outside)!r} is outside '
                f"the Bucketizer's splits [{splits[0]!r}, {splits[-1]!r}]"
            )
        nan_rows = nan if valid is None else nan & valid
        if t.params["handle_invalid"] == "error" and bool(nan_rows.any()):
            raise InputError(
                f'transform bucketize_splits on column "{t.column}": NaN, which '
                'handle_invalid = "error" refuses'
            )
        index = torch.where(nan, last + 1, index)
        return index.to(x.dtype), valid

    numeric_op(batch, t, compute)


def binarize(batch: FeatureBatch, t: Transform) -> None:
    """Binarizer: 1.0 where ``x > threshold``, else 0.0 (null and NaN too); ``nan_value`` is what
    NaN gives instead (Spark tests ``!(x <= t)`` on a vector with a negative threshold: 1.0)."""
    import torch

    threshold, nan_value = t.params["threshold"], t.params.get("nan_value")

    def compute(x, valid):
        above = x > scalar_like(x, threshold)
        if valid is not None:
            above = above & valid
        out = above.to(x.dtype)
        if nan_value is not None:
            out = torch.where(torch.isnan(x), scalar_like(x, nan_value), out)
        return out, None

    numeric_op(batch, t, compute)


def one_hot_index(batch: FeatureBatch, t: Transform) -> None:
    """OneHotEncoderModel on a category index: slot ``int(x)`` is 1.0 for 0 <= x < size (a
    fraction truncates); anything else raises under ``error`` and takes the extra slot under
    ``keep`` (none left when ``drop_last``); the dropped last category is all zeros; null stays null."""
    import torch

    from common.model.features import TensorColumn

    size, keep = t.params["size"], t.params["handle_invalid"] == "keep"
    column = batch.tensor(t.column)
    x, valid = column.values, column.valid
    in_range = (x >= 0) & (x < size)
    invalid = ~in_range if valid is None else ~in_range & valid
    if not keep and bool(invalid.any()):
        value = _first(x, invalid)
        kind = "negative value" if value < 0 else "unseen value"
        raise InputError(
            f'transform one_hot_index on column "{t.column}": {kind} {value!r} (categories 0..{size - 1}; '
            f'OneHotEncoder handleInvalid = "error")'
        )
    index = torch.where(in_range, x, scalar_like(x, float(size)))
    names = t.output_columns()
    for j, name in enumerate(names):
        hot = (index >= j) & (index < j + 1) & (index < len(names))
        batch.set(name, TensorColumn(hot.to(x.dtype), valid, pa.float64()))


#: the Spark ML ops (``ML_OPS`` in ``common.spec.transforms``) -> their implementations.
OPS = {
    "assemble": assemble,
    "scale_shift": scale_shift,
    "rescale": rescale,
    "bucketize_splits": bucketize_splits,
    "binarize": binarize,
    "one_hot_index": one_hot_index,
}
