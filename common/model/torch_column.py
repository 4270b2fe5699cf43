"""One column through torch, the plumbing every numeric transform op shares (``transform_ops``,
``spark_ml_ops``): torch is imported inside, so importing this module on the driver is free."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from common.model.features import FeatureBatch
    from common.spec.transforms import Transform


def numeric_op(batch: FeatureBatch, t: Transform, compute) -> None:
    """Writes ``t.output``: ``compute(values, valid)`` over ``t.column``'s tensor, on the batch's
    device, typed as the op declares."""
    from common.model.features import TensorColumn

    column = batch.tensor(t.column)
    values, valid = compute(column.values, column.valid)
    batch.set(t.output, TensorColumn(values, valid, t.output_type()))


def scalar_like(x, value: float):
    """A 0-d tensor on ``x``'s device: CUDA turns division by a Python scalar into a multiplication
    by its reciprocal, which can differ from Spark's division in the last bit."""
    import torch

    return torch.tensor(value, dtype=x.dtype, device=x.device)
