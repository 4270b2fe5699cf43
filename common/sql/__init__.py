"""Spark SQL expressions compiled to vectorised torch / pyarrow kernels with Spark's semantics.

``compile_sql`` runs on the driver when a bundle loads (no torch import): it parses with sqlglot,
types the expression as Spark's analyzer would, and refuses what cannot be reproduced exactly.
``CompiledSql.evaluate`` runs in the workers: numeric, date and time work in torch on the batch's
device, string and hash work in pyarrow/NumPy on the host. Under ANSI an error row raises
``SqlRuntimeError`` with Spark's error class; without ANSI it gives Spark 3's null or wrapped value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from common.sql import types as T
from common.sql.errors import ERROR_CLASSES, SqlCompileError, SqlRuntimeError
from common.sql.nodes import Node
from common.sql.typecheck import check, parse, referenced_columns, supported, validate_static

if TYPE_CHECKING:
    import torch

__all__ = [
    "CompiledSql",
    "SqlCompileError",
    "SqlRuntimeError",
    "compile_sql",
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

    def evaluate_rows(self, columns: Mapping[str, pa.Array], rows: int, device: torch.device | str = "cpu"):
        """(ctx, result Vec) without raising: ``result.err`` holds each row's ANSI error code."""
        import torch

        from common.sql.evaluate import evaluate
        from common.sql.vec import Ctx

        ctx = Ctx(rows, torch.device(device))
        inputs = {name: ctx.column(columns[name], typ) for name, typ in self.columns.items()}
        result = evaluate(ctx, self.tree, inputs)
        if self.planning_error is not None:
            result.err = ctx.raise_where(
                None, torch.ones(rows, dtype=torch.bool, device=ctx.device), self.planning_error
            )
        return ctx, result

    def evaluate_vec(self, columns: Mapping[str, pa.Array], rows: int, device: torch.device | str = "cpu"):
        """(ctx, result Vec); raises SqlRuntimeError for the first error row, as Spark fails the query."""
        ctx, result = self.evaluate_rows(columns, rows, device)
        if result.err is not None:
            codes = result.err[result.err != 0]
            if codes.numel():
                error_class = ERROR_CLASSES[int(codes[0])]
                raise SqlRuntimeError(f"[{error_class}] in `{self.text}`", error_class)
        return ctx, result

    def evaluate(
        self, columns: Mapping[str, pa.Array], rows: int, device: torch.device | str = "cpu"
    ) -> pa.Array:
        """The result over one batch as an Arrow array of ``arrow_type``.

        Raises:
            SqlRuntimeError: under ANSI, when a row hits Spark's runtime error (the first row's class).
        """
        ctx, result = self.evaluate_vec(columns, rows, device)
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
