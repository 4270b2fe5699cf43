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


def evaluate(ctx: Ctx, node: Node, columns: dict[str, Vec]) -> Vec:
    """The value of ``node`` over the batch; ``columns`` holds the inputs as Vecs."""
    if node.op == "column":
        return columns[node.params["name"]]
    args = [evaluate(ctx, arg, columns) for arg in node.args]
    return KERNELS[node.op](ctx, node, args)
