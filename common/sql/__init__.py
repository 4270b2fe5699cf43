"""Spark SQL expressions compiled to vectorised torch / pyarrow kernels with Spark's semantics.

``compile_sql`` runs on the driver at preflight and in the workers: it parses with sqlglot, types
the expression as Spark's analyzer would, refuses what cannot be reproduced exactly, and folds
constants as Spark's optimizer does (with torch, when there is a constant to fold).
``CompiledSql.evaluate_rows`` is the one evaluation: the ``sql`` transform
(``common.model.sql_transform``), the tests and the fuzzer all run through it. Numeric, date and
time work runs in torch on the batch's device, string and hash work in pyarrow/NumPy on the host.
Under ANSI an error row raises ``SqlRuntimeError`` with Spark's error class and one line
(``errors.runtime_error_line``); without ANSI it gives Spark 3's null or wrapped value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from common.sql import types as T
from common.sql.errors import ERROR_CLASSES, SqlCompileError, SqlRuntimeError, runtime_error_line
from common.sql.nodes import Node
from common.sql.typecheck import check, parse, referenced_columns, supported, validate_static

if TYPE_CHECKING:
    import torch

    from common.sql.vec import Ctx, Vec

    #: an input column: Arrow, or a Vec already on the evaluation's device (used in place)
    Column = pa.Array | pa.ChunkedArray | Vec

__all__ = [
    "CompiledSql",
    "SqlCompileError",
    "SqlRuntimeError",
    "compile_sql",
    "compiled_for",
    "referenced_columns",
    "supported",
    "validate_static",
]


@dataclass(frozen=True)
class CompiledSql:
    """One compiled expression.

    Attributes:
        text: the expression as written.
        ansi: Spark's ``spark.sql.ansi.enabled`` it was compiled for.
        tree: the typed tree.
        columns: the input columns it reads, name -> Spark type.
        planning_error: the ANSI error class of a constant part that fails outside any conditional
            branch (``abs(CAST('x' AS INT)) + a``): Spark raises it while planning, so the query
            fails whatever the rows hold; every row of every batch raises it here.
    """

    text: str
    ansi: bool
    tree: Node
    columns: Mapping[str, str]
    planning_error: str | None = None

    @property
    def spark_type(self) -> str:
        return self.tree.type

    @property
    def arrow_type(self) -> pa.DataType:
        return T.ARROW_TYPES[self.tree.type]

    def evaluate_rows(
        self, columns: Mapping[str, Column], rows: int, device: torch.device | str = "cpu"
    ) -> tuple[Ctx, Vec]:
        """(ctx, result Vec) without raising: ``result.err`` holds each row's ANSI error code, the
        planning error on every row. The one evaluation every caller runs through.

        Args:
            columns: the inputs by name, each an Arrow array or a Vec already on ``device``.
        """
        import torch

        from common.sql.evaluate import evaluate
        from common.sql.vec import Ctx, Vec

        ctx = Ctx(rows, torch.device(device))
        inputs = {}
        for name, typ in self.columns.items():
            column = columns[name]
            inputs[name] = column if isinstance(column, Vec) else ctx.column(column, typ)
        result = evaluate(ctx, self.tree, inputs)
        if self.planning_error is not None:
            result.err = ctx.raise_where(
                None, torch.ones(rows, dtype=torch.bool, device=ctx.device), self.planning_error
            )
        return ctx, result

    def evaluate_vec(
        self,
        columns: Mapping[str, Column],
        rows: int,
        device: torch.device | str = "cpu",
        output: str | None = None,
    ) -> tuple[Ctx, Vec]:
        """(ctx, result Vec); raises SqlRuntimeError for the first error row, as Spark fails the
        query. ``output`` names the sql transform in the error line."""
        ctx, result = self.evaluate_rows(columns, rows, device)
        if result.err is not None:
            codes = result.err[result.err != 0]
            if codes.numel():
                error_class = ERROR_CLASSES[int(codes[0])]
                raise SqlRuntimeError(runtime_error_line(output, self.text, error_class), error_class)
        return ctx, result

    def evaluate(
        self,
        columns: Mapping[str, Column],
        rows: int,
        device: torch.device | str = "cpu",
        output: str | None = None,
    ) -> pa.Array:
        """The result over one batch as an Arrow array of ``arrow_type``.

        Raises:
            SqlRuntimeError: under ANSI, when a row hits Spark's runtime error (the first row's class).
        """
        ctx, result = self.evaluate_vec(columns, rows, device, output)
        return ctx.to_arrow(result)


def compile_sql(text: str, schema: Mapping[str, pa.DataType | str], ansi: bool) -> CompiledSql:
    """Compiles ``text`` against the available columns (Arrow types, or Spark type names).

    Raises:
        SqlCompileError: one line naming the problem (unsupported or non-deterministic function,
            decimal result, unknown column, regex outside the common subset, ...).
    """
    types: dict[str, str] = {}
    for name, typ in schema.items():
        sql_type = typ if isinstance(typ, str) else T.sql_type_of_arrow(typ)
        types[name] = sql_type if sql_type is not None else f"unsupported:{typ}"
    parsed = parse(text)
    used = referenced_columns(parsed)
    for name in used:
        if name in types and types[name].startswith("unsupported:"):
            raise SqlCompileError(
                f'column "{name}" is {types[name].split(":", 1)[1]}; sql transforms read int32, int64, '
                "float32, "
                "float64, string, bool, date and timestamp (with a time zone) columns"
            )
    tree = check(text, {n: t for n, t in types.items() if not t.startswith("unsupported:")}, ansi, parsed)
    from common.sql.evaluate import fold_constants  # torch: only when there is something to fold

    failures: list[str] = []
    if any(n.op not in ("literal", "column") and all(a.op == "literal" for a in n.args) for n in tree.walk()):
        tree = fold_constants(tree, failures)
    columns = {n.params["name"]: n.type for n in tree.walk() if n.op == "column"}
    return CompiledSql(text, ansi, tree, columns, failures[0] if failures else None)


_CACHE: dict[tuple[str, bool, tuple], CompiledSql] = {}


def compiled_for(expr: str, ansi: bool, schema: Mapping[str, pa.DataType]) -> CompiledSql:
    """``compile_sql`` cached per expression and input types (every batch of a job has them)."""
    key = (expr, ansi, tuple(sorted((n, str(t)) for n, t in schema.items())))
    if key not in _CACHE:
        _CACHE[key] = compile_sql(expr, schema, ansi)
    return _CACHE[key]
