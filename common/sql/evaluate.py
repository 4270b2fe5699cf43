"""Walks a typed ``Node`` tree with the op registry (``common.sql.vec.OPS``), and folds constants."""

from __future__ import annotations

from common.sql import (
    kernels_cast,
    kernels_hash,
    kernels_numeric,
    kernels_round,
    kernels_string,
    kernels_time,
)
from common.sql.errors import ERROR_CLASSES
from common.sql.nodes import Node
from common.sql.vec import OPS, Ctx, Vec, kernel

_MODULES = (kernels_cast, kernels_hash, kernels_numeric, kernels_round, kernels_string, kernels_time)


@kernel("literal", null_intolerant=False)
def literal(ctx: Ctx, node: Node, args) -> Vec:
    return ctx.literal(node.params["value"], node.type)


# Spark's ConditionalExpressions (CASE and IF, COALESCE and NVL, NANVL): ConstantFolding folds
# inside them without failing (a branch may never run), so a constant that fails there fails only
# the rows that reach it; a conditional that is constant as a whole is folded as one.
_CONDITIONAL = {"case", "coalesce", "nanvl"}


def fold_constants(node: Node, failures: list[str] | None = None, conditional: bool = False) -> Node:
    """Evaluates once, at compile time, every subtree that reads no column, as Spark's optimizer
    folds constants. A subtree that raises under ANSI is kept; when it is not inside a conditional
    branch, Spark's ConstantFolding raises its error while planning, failing the query for every
    input, and its error class is appended to ``failures``."""
    import torch

    if node.op in ("literal", "column"):
        return node
    below: list[str] = []
    args = tuple(fold_constants(a, below, conditional or node.op in _CONDITIONAL) for a in node.args)
    node = Node(node.op, node.type, args, node.params)
    if node.op == "is_null" and args[0].op != "literal" and _never_null(args[0]):
        # Spark's NullPropagation answers IS [NOT] NULL of an expression that cannot be null
        # before ConstantFolding evaluates it: (2147483647 + 1) IS NULL is false, no overflow
        return Node("literal", node.type, params={"value": False})
    if failures is not None:
        failures.extend(below)
    if not all(a.op == "literal" for a in args):
        return node
    ctx = Ctx(1, torch.device("cpu"))
    value = evaluate(ctx, node, {})
    if value.err is not None and bool(value.err.any()):
        if not conditional and failures is not None:
            failures.append(ERROR_CLASSES[int(value.err[0])])
        return node
    if not bool(ctx.valid(value)[0]):
        return Node("literal", node.type, params={"value": None})
    if value.type == "string":
        return Node("literal", node.type, params={"value": value.data[0].as_py()})
    return Node("literal", node.type, params={"value": value.data[0].item()})


def _never_null(node: Node) -> bool:
    """Whether Spark types ``node`` as not nullable, for the constants whose evaluation fails:
    a non-null literal, and integer arithmetic and non-string CASTs of such (string casts, try
    casts and divisions can give null)."""
    if node.op == "literal":
        return node.params["value"] is not None
    if node.op == "cast":
        return node.params["mode"] == "ansi" and node.args[0].type != "string" and _never_null(node.args[0])
    return node.op in ("add", "sub", "mul", "neg", "abs") and all(_never_null(a) for a in node.args)


def evaluate(ctx: Ctx, node: Node, columns: dict[str, Vec]) -> Vec:
    """The value of ``node`` over the batch; ``columns`` holds the inputs as Vecs."""
    if node.op == "column":
        return columns[node.params["name"]]
    args = [evaluate(ctx, arg, columns) for arg in node.args]
    return OPS[node.op].kernel(ctx, node, args)
