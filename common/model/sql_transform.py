"""The ``sql`` transform inside a worker: read the expression's columns from a FeatureBatch, run
the compiled expression (``CompiledSql.evaluate_vec``, the one evaluation) on the batch's device,
and write the output column.

Numeric inputs already on the device (a TensorColumn) are used in place; the output stays on the
device as a TensorColumn when it is a float or double (so a torch model reads it without a copy),
and becomes an Arrow array otherwise (strings, dates, and integers, which must stay exact).
An ANSI error becomes one ``SqlRuntimeError`` line naming the output, the expression and the class.
"""

from __future__ import annotations

import torch

from common.model.features import FeatureBatch, TensorColumn
from common.sql import compiled_for
from common.sql import types as T
from common.sql.vec import Vec


def apply_sql(batch: FeatureBatch, output: str, expr: str, ansi: bool, names: tuple[str, ...]) -> None:
    """Evaluates ``expr`` over ``batch`` (reading ``names``) and sets ``output``."""
    columns = {n: batch._get(n) for n in names}
    types = {n: c.arrow_type if isinstance(c, TensorColumn) else c.type for n, c in columns.items()}
    compiled = compiled_for(expr, ansi, types)
    inputs = {}
    for name, typ in compiled.columns.items():
        column = columns[name]
        if isinstance(column, TensorColumn) and typ in T.NUMERIC:  # already on the device
            dtype = getattr(torch, T.TORCH_DTYPES[typ])
            values = column.values if column.values.dtype == dtype else column.values.to(dtype)
            inputs[name] = Vec(typ, values, column.valid)
        else:
            inputs[name] = batch.arrow(name)
    ctx, result = compiled.evaluate_vec(inputs, batch.num_rows, batch.device, output)
    if result.type in T.FRACTIONAL:
        batch.set(output, TensorColumn(result.data.contiguous(), result.valid, compiled.arrow_type))
    else:
        batch.set(output, ctx.to_arrow(result))
