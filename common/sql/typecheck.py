"""Spark SQL text -> typed ``Node`` tree: sqlglot parses, ``common.sql.checker`` types and checks.

The parser is sqlglot's Spark dialect with its function table emptied, so every call arrives as
``name(args)`` exactly as written (sqlglot would otherwise rewrite ``date_sub`` into ``date_add`` of
a product, or wrap ``year``'s argument in a cast). ``check`` types the tree and then applies the
optimizer rule that decides which partial sum overflows; ``validate_static`` runs the checks that
need no column types, when a bundle loads.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark

from common.sql import types as T
from common.sql.checker import NON_DETERMINISTIC, Checker, decimal_error, sql_text, supported
from common.sql.errors import SqlCompileError
from common.sql.functions import FUNCTIONS
from common.sql.nodes import Node
from common.sql.regex import translate_pattern

__all__ = ["check", "parse", "referenced_columns", "supported", "validate_static"]


class _SparkCalls(Spark):
    """Spark's grammar, but function calls stay ``Anonymous(name, args)`` as written."""

    class Parser(Spark.Parser):
        FUNCTIONS: dict = {}
        NO_PAREN_FUNCTIONS: dict = {}


def parse(text: str) -> exp.Expression:
    """The sqlglot tree of one Spark SQL expression; a syntax error or a statement is refused."""
    try:
        tree = sqlglot.parse_one(text, read=_SparkCalls)
    except sqlglot.errors.SqlglotError as error:
        first = str(error).splitlines()[0]
        raise SqlCompileError(f"cannot parse the expression: {first}") from None
    if tree is None or isinstance(tree, (exp.Select, exp.Query, exp.Alias)):
        raise SqlCompileError("expected one expression, not a statement or an alias (the output names it)")
    return tree


def check(text: str, columns: Mapping[str, str], ansi: bool, tree: exp.Expression | None = None) -> Node:
    """Types ``text`` (or its parsed ``tree``) against ``columns`` (name -> Spark type)."""
    checker = Checker(columns, ansi)
    node = reorder_associative(checker.node(parse(text) if tree is None else tree))
    if node.type == T.DECIMAL:
        raise decimal_error(text)
    if node.type == T.VOID:
        raise SqlCompileError("the expression is an untyped NULL; write CAST(NULL AS <type>)")
    return node


def reorder_associative(node: Node) -> Node:
    """Spark's optimizer rule ReorderAssociativeOperator, as Spark 4 applies it (read from its
    optimized plans): a chain of integral ``+`` (or ``*``) that holds a constant runs as its other
    operands left to right, then the constants' sum (product): ``(a + 1) + b`` is ``(a + b) + 1``,
    ``1 + a`` is ``a + 1``. With wrapping arithmetic the order changes nothing; under ANSI it
    decides which partial sum overflows, so ``(i + 2147483647) + i`` fails for ``i = -2147483647``
    in Spark. Applied top-down, as the rule is."""
    if node.op in ("add", "mul") and node.type in T.INTEGRAL:
        operands = _flatten(node, node.op)
        constants = [o for o in operands if _foldable(o)]
        if constants:
            others = [reorder_associative(o) for o in operands if not _foldable(o)]
            constant = functools.reduce(lambda x, y: Node(node.op, node.type, (x, y), node.params), constants)
            if not others:
                return constant
            rest = functools.reduce(lambda x, y: Node(node.op, node.type, (x, y), node.params), others)
            return Node(node.op, node.type, (rest, constant), node.params)
    if not node.args:
        return node
    return Node(node.op, node.type, tuple(reorder_associative(a) for a in node.args), node.params)


def _flatten(node: Node, op: str) -> list[Node]:
    if node.op != op:
        return [node]
    return [leaf for arg in node.args for leaf in _flatten(arg, op)]


def _foldable(node: Node) -> bool:
    return all(n.op != "column" for n in node.walk())


def validate_static(text: str) -> exp.Expression:
    """The checks that need no column types, for bundle load: syntax, unsupported and
    non-deterministic functions, regex patterns. Returns the parsed tree."""
    tree = parse(text)
    for node in tree.walk():
        if isinstance(node, exp.Anonymous):
            name = str(node.this).lower()
            sql = sql_text(node)
            if name in NON_DETERMINISTIC:
                Checker({}, True).call_named(name, [], sql)  # raises, with the reason
            if name not in FUNCTIONS:
                raise SqlCompileError(f"`{sql}`: unsupported function {name}; supported: {supported()}")
            pattern = node.expressions[1] if len(node.expressions) > 1 else None
            if name in _REGEX_FUNCTIONS and isinstance(pattern, exp.Literal) and pattern.is_string:
                translate_pattern(pattern.this, sql, _REGEX_FUNCTIONS[name])
        elif isinstance(node, exp.RegexpLike) and isinstance(node.expression, exp.Literal):
            translate_pattern(node.expression.this, sql_text(node), "rlike")
        elif isinstance(node, exp.Column) and not node.this.quoted and node.name.lower() in NON_DETERMINISTIC:
            Checker({}, True).call_named(node.name.lower(), [], sql_text(node))
    return tree


_REGEX_FUNCTIONS = {
    "rlike": "rlike",
    "regexp": "rlike",
    "regexp_like": "rlike",
    "regexp_replace": "regexp_replace",
}


def referenced_columns(text: str | exp.Expression) -> list[str]:
    """The column names ``text`` reads, in first-use order (no typing: for dependency order)."""
    tree = parse(text) if isinstance(text, str) else text
    names = [c.name for c in tree.find_all(exp.Column) if c.name.lower() not in NON_DETERMINISTIC]
    return list(dict.fromkeys(names))
