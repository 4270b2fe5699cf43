"""The typed expression tree the type checker builds and the evaluator walks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, eq=False)
class Node:
    """One typed operation.

    Attributes:
        op: the op that evaluates it (a key of ``common.sql.vec.OPS``, filled by the kernel modules).
        type: Spark's result type (``common.sql.types``).
        args: the operand nodes, evaluated by the kernel.
        params: compile-time constants of the op (a literal's value, a column's name, a cast's
            mode, a regex already translated, ...).
    """

    op: str
    type: str
    args: tuple[Node, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    def walk(self):
        yield self
        for arg in self.args:
            yield from arg.walk()


def lit(value: Any, typ: str) -> Node:
    """A literal node of Spark type ``typ`` (``None`` for NULL)."""
    return Node("literal", typ, params={"value": value})
