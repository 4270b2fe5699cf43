"""Walks a typed ``Node`` tree with the kernel registry."""

from __future__ import annotations

from common.sql import (
    kernels_cast,
    kernels_hash,
    kernels_numeric,
    kernels_round,
    kernels_string,
    kernels_time,
)
from common.sql.nodes import Node
from common.sql.vec import KERNELS, Ctx, Vec, kernel

_MODULES = (kernels_cast, kernels_hash, kernels_numeric, kernels_round, kernels_string, kernels_time)


@kernel("literal")
def literal(ctx: Ctx, node: Node, args) -> Vec:
    return ctx.literal(node.params["value"], node.type)


def fold_constants(node: Node) -> Node:
    """Evaluates once, at compile time, every subtree that reads no column (as Spark's optimizer
    folds constants); a subtree that raises under ANSI is kept, to raise per row as in Spark."""
    import torch

    if node.op in ("literal", "column"):
        return node
    args = tuple(fold_constants(a) for a in node.args)
    node = Node(node.op, node.type, args, node.params)
    if not all(a.op == "literal" for a in args):
        return node
    ctx = Ctx(1, torch.device("cpu"))
    value = evaluate(ctx, node, {})
    if value.err is not None and bool(value.err.any()):
        return node
    if not bool(ctx.valid(value)[0]):
        return Node("literal", node.type, params={"value": None})
    if value.type == "string":
        return Node("literal", node.type, params={"value": value.data[0].as_py()})
    return Node("literal", node.type, params={"value": value.data[0].item()})


def evaluate(ctx: Ctx, node: Node, columns: dict[str, Vec]) -> Vec:
    """The value of ``node`` over the batch; ``columns`` holds the inputs as Vecs."""
    if node.op == "column":
        return columns[node.params["name"]]
    args = [evaluate(ctx, arg, columns) for arg in node.args]
    return KERNELS[node.op](ctx, node, args)
