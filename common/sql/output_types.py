"""Typing a bundle's sql transforms against the job's input schema, on the driver at preflight.

The bundle alone cannot type an expression (its columns' types come with the input), so the
checks that need types (a decimal result, a string compared with a number, an unknown column) run
here, before any engine starts: one BundleError line, exit code 2, nothing published.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from common.sql import SqlCompileError, compile_sql


def sql_output_types(transforms: Iterable[Any], input_schema: pa.Schema) -> dict[str, pa.DataType]:
    """Compiles every ``op = "sql"`` transform in order against the input columns and the outputs
    of the transforms before it; returns each sql output's Arrow type.

    Raises:
        SqlCompileError: naming the transform's output and the problem.
    """
    types = {field.name: field.type for field in input_schema}
    outputs = {}
    for t in transforms:
        if t.op != "sql":
            for name in t.output_columns():
                types[name] = t.output_type()
            continue
        try:
            compiled = compile_sql(t.params["expr"], types, t.params["ansi"])
        except SqlCompileError as error:
            raise SqlCompileError(f'sql transform "{t.output}": {error}') from None
        types[t.output] = outputs[t.output] = compiled.arrow_type
    return outputs
