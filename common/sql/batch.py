"""The ``sql`` transform inside a worker: read the expression's columns from a FeatureBatch, run
the compiled expression on the batch's device, and write the output column.

Numeric inputs already on the device (a TensorColumn) are used in place; the output stays on the
device as a TensorColumn when it is a float or double (so a torch model reads it without a copy),
and becomes an Arrow array otherwise (strings, dates, and integers, which must stay exact).
An ANSI error becomes one ``SqlRuntimeError`` line naming the output, the expression and the class.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from common.sql import CompiledSql, SqlRuntimeError, compile_sql
from common.sql import types as T
from common.sql.errors import ERROR_CLASSES, runtime_error_line

_CACHE: dict[tuple[str, bool, tuple], CompiledSql] = {}


def compiled_for(expr: str, ansi: bool, schema: dict[str, pa.DataType]) -> CompiledSql:
    """The expression compiled for these input types (cached: every batch of a job has them)."""
    key = (expr, ansi, tuple(sorted((n, str(t)) for n, t in schema.items())))
    if key not in _CACHE:
        _CACHE[key] = compile_sql(expr, schema, ansi)
    return _CACHE[key]


def apply_sql(batch: Any, output: str, expr: str, ansi: bool, names: tuple[str, ...]) -> None:
    """Evaluates ``expr`` over ``batch`` (a FeatureBatch, reading ``names``) and sets ``output``."""
    import torch

    from common.model.features import TensorColumn
    from common.sql.evaluate import evaluate
    from common.sql.vec import Ctx, Vec

    columns = {n: batch._get(n) for n in names}
    types = {n: c.arrow_type if isinstance(c, TensorColumn) else c.type for n, c in columns.items()}
    compiled = compiled_for(expr, ansi, types)
    ctx = Ctx(batch.num_rows, batch.device)
    inputs = {}
    for name, typ in compiled.columns.items():
        column = columns[name]
        if isinstance(column, TensorColumn) and typ in T.NUMERIC:  # already on the device
            dtype = getattr(torch, T.TORCH_DTYPES[typ])
            values = column.values if column.values.dtype == dtype else column.values.to(dtype)
            inputs[name] = Vec(typ, values, column.valid)
        else:
            inputs[name] = ctx.column(batch.arrow(name), typ)
    result = evaluate(ctx, compiled.tree, inputs)
    if result.err is not None:
        codes = result.err[result.err != 0]
        if codes.numel():
            error_class = ERROR_CLASSES[int(codes[0])]
            raise SqlRuntimeError(runtime_error_line(output, expr, error_class), error_class)
    if result.type in T.FRACTIONAL:
        batch.set(output, TensorColumn(result.data.contiguous(), result.valid, compiled.arrow_type))
    else:
        batch.set(output, ctx.to_arrow(result))
