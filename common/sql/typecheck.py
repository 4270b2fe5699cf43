"""Spark SQL text -> typed ``Node`` tree: sqlglot parses, this module types and checks.

The parser is sqlglot's Spark dialect with its function table emptied, so every call arrives as
``name(args)`` exactly as written (sqlglot would otherwise rewrite ``date_sub`` into ``date_add`` of
a product, or wrap ``year``'s argument in a cast). The checker decides each node's Spark type,
inserts the implicit casts Spark's analyzer would, and refuses what it cannot reproduce exactly:
unknown and non-deterministic functions, decimal results, mixes whose coercion differs between
ANSI modes, and regular expressions outside the Java/RE2 common subset. No torch here: this runs on
the driver when a bundle loads.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark

from common.sql import types as T
from common.sql.errors import SqlCompileError
from common.sql.nodes import Node


class _SparkCalls(Spark):
    """Spark's grammar, but function calls stay ``Anonymous(name, args)`` as written."""

    class Parser(Spark.Parser):
        FUNCTIONS: dict = {}
        NO_PAREN_FUNCTIONS: dict = {}


NON_DETERMINISTIC = {
    "rand": "draws random numbers",
    "randn": "draws random numbers",
    "random": "draws random numbers",
    "uniform": "draws random numbers",
    "randstr": "draws random strings",
    "shuffle": "shuffles at random",
    "uuid": "draws a random UUID",
    "now": "reads the clock",
    "current_timestamp": "reads the clock",
    "current_date": "reads the clock",
    "curdate": "reads the clock",
    "localtimestamp": "reads the clock",
    "current_timezone": "reads the session",
    "monotonically_increasing_id": "numbers rows by partition",
    "spark_partition_id": "numbers partitions",
    "input_file_name": "names the file a row came from",
    "input_file_block_start": "names the file a row came from",
    "input_file_block_length": "names the file a row came from",
}
_DATE_TRUNC_UNITS = {
    "YEAR": "year",
    "YYYY": "year",
    "YY": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "MM": "month",
    "MON": "month",
    "WEEK": "week",
    "DAY": "day",
    "DD": "day",
    "HOUR": "hour",
    "MINUTE": "minute",
    "SECOND": "second",
    "MILLISECOND": "millisecond",
    "MICROSECOND": "microsecond",
}
_CAST_TARGETS = {
    exp.DataType.Type.INT: T.INT,
    exp.DataType.Type.BIGINT: T.BIGINT,
    exp.DataType.Type.FLOAT: T.FLOAT,
    exp.DataType.Type.DOUBLE: T.DOUBLE,
    exp.DataType.Type.TEXT: T.STRING,
    exp.DataType.Type.BOOLEAN: T.BOOLEAN,
    exp.DataType.Type.DATE: T.DATE,
    exp.DataType.Type.TIMESTAMPTZ: T.TIMESTAMP,
    exp.DataType.Type.TIMESTAMP: T.TIMESTAMP,
    exp.DataType.Type.DECIMAL: T.DECIMAL,
}
# Casts the compiler reproduces (source -> targets); others are refused.
_CASTS = {
    **{t: set(T.NUMERIC) | {T.STRING, T.BOOLEAN} for t in T.NUMERIC},
    T.STRING: set(T.NUMERIC) | {T.STRING, T.BOOLEAN, T.DATE, T.TIMESTAMP},
    T.BOOLEAN: set(T.NUMERIC) | {T.STRING, T.BOOLEAN},
    T.DATE: {T.STRING, T.DATE, T.TIMESTAMP},
    T.TIMESTAMP: {T.STRING, T.DATE, T.TIMESTAMP},
}
_COMPARISONS = {
    exp.EQ: "eq",
    exp.NEQ: "neq",
    exp.GT: "gt",
    exp.GTE: "gte",
    exp.LT: "lt",
    exp.LTE: "lte",
    exp.NullSafeEQ: "eq_null_safe",
}
_ARITHMETIC = {exp.Add: "add", exp.Sub: "sub", exp.Mul: "mul", exp.Mod: "mod"}


# Ops that are null whenever an argument is (Spark's NullIntolerant), folded at compile time as
# Spark's optimizer folds them, so that an error in a sibling argument is never raised.
_NULL_INTOLERANT = {
    "add",
    "sub",
    "mul",
    "divide",
    "int_divide",
    "mod",
    "pmod",
    "neg",
    "abs",
    "sign",
    "sqrt",
    "exp",
    "expm1",
    "ln",
    "log10",
    "log2",
    "log1p",
    "log_base",
    "pow",
    "floor",
    "ceil",
    "round",
    "eq",
    "neq",
    "lt",
    "lte",
    "gt",
    "gte",
    "not",
    "cast",
    "lower",
    "upper",
    "length",
    "trim",
    "substring",
    "pad",
    "replace",
    "startswith",
    "endswith",
    "contains",
    "instr",
    "split_part",
    "rlike",
    "regexp_extract",
    "regexp_replace",
    "date_part",
    "time_part",
    "date_add",
    "datediff",
    "date_trunc",
    "unix_timestamp",
    "from_utc_timestamp",
    "to_utc_timestamp",
    "crc32",
}


def _is_null(node: Node) -> bool:
    return node.op == "literal" and node.params["value"] is None


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
    checker = _Checker(columns, ansi)
    node = reorder_associative(checker.node(parse(text) if tree is None else tree))
    if node.type == T.DECIMAL:
        raise _decimal(text)
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
            sql = _sql(node)
            if name in NON_DETERMINISTIC:
                _Checker({}, True).call_named(name, [], sql)  # raises, with the reason
            if name not in FUNCTIONS:
                raise SqlCompileError(f"`{sql}`: unsupported function {name}; supported: {supported()}")
            pattern = node.expressions[1] if len(node.expressions) > 1 else None
            if name in _REGEX_FUNCTIONS and isinstance(pattern, exp.Literal) and pattern.is_string:
                translate_pattern(pattern.this, sql, _REGEX_FUNCTIONS[name])
        elif isinstance(node, exp.RegexpLike) and isinstance(node.expression, exp.Literal):
            translate_pattern(node.expression.this, _sql(node), "rlike")
        elif isinstance(node, exp.Column) and not node.this.quoted and node.name.lower() in NON_DETERMINISTIC:
            _Checker({}, True).call_named(node.name.lower(), [], _sql(node))
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


def _upcast(a: str, b: str) -> bool:
    """Spark's legal numeric upcast (int < bigint < float < double), lossy to float included."""
    order = (T.INT, T.BIGINT, T.FLOAT, T.DOUBLE)
    return a in order and b in order and order.index(a) < order.index(b)


def _decimal(sql: str) -> SqlCompileError:
    return SqlCompileError(
        f"`{sql}` would compute in DECIMAL (Spark types a literal such as 1.5 as DECIMAL); "
        "write CAST(... AS DOUBLE) around it, or a double literal such as 1.5D"
    )


class _Sql:
    """An expression's SQL text, rendered only when a message needs it (rendering costs)."""

    __slots__ = ("e",)

    def __init__(self, e: exp.Expression):
        self.e = e

    def __str__(self) -> str:
        return self.e.sql(dialect="spark")

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _sql(e: exp.Expression) -> _Sql:
    return _Sql(e)


def lit(value, typ: str) -> Node:
    return Node("literal", typ, params={"value": value})


class _Checker:
    def __init__(self, columns: Mapping[str, str], ansi: bool):
        self.columns = dict(columns)
        self.ansi = ansi
        self.cast_mode = "ansi" if ansi else "legacy"

    # ---- the walk ----------------------------------------------------------------------------

    def node(self, e: exp.Expression) -> Node:
        for cls in type(e).__mro__:
            rule = _RULES.get(cls)
            if rule is not None:
                node = rule(self, e)
                if node.op in _NULL_INTOLERANT and any(_is_null(a) for a in node.args):
                    return lit(None, node.type)  # Spark's NullPropagation: nothing else is evaluated
                return node
        raise SqlCompileError(
            f"unsupported syntax `{_sql(e)}` ({type(e).__name__}); supported: {supported()}"
        )

    def nodes(self, es) -> list[Node]:
        return [self.node(e) for e in es]

    # ---- helpers -----------------------------------------------------------------------------

    def cast(self, node: Node, target: str, sql: str, mode: str | None = None) -> Node:
        """``node`` as ``target`` (an implicit cast where Spark's analyzer inserts one)."""
        if node.type == target:
            return node
        if node.op == "literal" and node.params["value"] is None:
            return lit(None, target)
        if node.type == T.DECIMAL:
            return self._decimal_literal_as(node, target, sql)
        if target not in _CASTS.get(node.type, ()):
            raise SqlCompileError(
                f"`{sql}`: cannot cast {node.type} to {target}; supported casts: {_cast_list()}"
            )
        if node.op == "cast" and _upcast(node.args[0].type, node.type) and _upcast(node.type, target):
            node = node.args[0]  # Spark's optimizer drops the middle of int -> float -> double
        return Node("cast", target, (node,), {"mode": mode or self.cast_mode})

    def _decimal_literal_as(self, node: Node, target: str, sql: str) -> Node:
        if node.op != "literal":
            raise _decimal(sql)
        value: Decimal = node.params["value"]
        if target in (T.DOUBLE, T.FLOAT):
            return lit(float(value), target)  # Spark: BigDecimal.doubleValue, correctly rounded
        if target == T.STRING:
            return lit(str(value), T.STRING)
        if target in T.INTEGRAL:
            whole = int(value)  # truncates toward zero, as Spark's decimal -> integral cast
            low, high = T.INT_RANGE[target]
            if not low <= whole <= high:
                raise SqlCompileError(f"`{sql}`: {value} does not fit {target}")
            return lit(whole, target)
        if target == T.BOOLEAN:
            return lit(value != 0, T.BOOLEAN)
        raise _decimal(sql)

    def common(self, nodes: list[Node], sql: str, what: str) -> str:
        typ = T.VOID
        for n in nodes:
            wider = T.wider(typ, n.type, self.ansi)
            if wider is None:
                kinds = ", ".join(dict.fromkeys(x.type for x in nodes))
                raise SqlCompileError(
                    f"`{sql}`: {what} mixes {kinds}; Spark's coercion of such a mix depends on ANSI mode, "
                    "so CAST the operands to one type"
                )
            typ = wider
        if typ == T.DECIMAL:
            raise _decimal(sql)
        return typ

    def numeric(self, node: Node, sql: str, what: str) -> Node:
        if node.type not in T.NUMERIC + (T.DECIMAL, T.VOID):
            hint = (
                "; CAST it (Spark reads a string as a double with ANSI off, a bigint with it on)"
                if node.type == T.STRING
                else ""
            )
            raise SqlCompileError(f"`{sql}`: {what} needs a number, got {node.type}{hint}")
        return node

    def literal_value(self, node: Node, sql: str, what: str, typ: tuple[str, ...]):
        if node.op != "literal" or node.type not in typ + (T.VOID,):
            raise SqlCompileError(f"`{sql}`: {what} must be a literal {' or '.join(typ)}")
        return node.params["value"]

    def string_arg(self, node: Node, sql: str) -> Node:
        """A string argument; numbers, booleans and dates are cast implicitly, as Spark does."""
        if node.type == T.STRING:
            return node
        return self.cast(node, T.STRING, sql)

    # ---- leaves ------------------------------------------------------------------------------

    def column(self, e: exp.Column) -> Node:
        if e.table:
            raise SqlCompileError(
                f"`{_sql(e)}`: qualified names are not supported; backquote a name with dots"
            )
        name = e.name
        if name not in self.columns:
            if not e.this.quoted and name.lower() in NON_DETERMINISTIC:
                return self.call_named(name.lower(), [], _sql(e))
            raise SqlCompileError(f'unknown column "{name}"; available: {", ".join(self.columns) or "none"}')
        return Node("column", self.columns[name], params={"name": name})

    def literal(self, e: exp.Literal) -> Node:
        text = e.this
        if e.is_string:
            return lit(text, T.STRING)
        return _number(text, negative=False, sql=_sql(e))

    def neg(self, e: exp.Neg) -> Node:
        inner = e.this
        if isinstance(inner, exp.Literal) and not inner.is_string:
            return _number(inner.this, negative=True, sql=_sql(e))
        child = self.numeric(self.node(inner), _sql(e), "unary minus")
        if child.type == T.DECIMAL:
            return lit(-child.params["value"], T.DECIMAL)
        return Node("neg", child.type, (child,), {"ansi": self.ansi})

    # ---- operators ---------------------------------------------------------------------------

    def arithmetic(self, e: exp.Binary) -> Node:
        op = _ARITHMETIC[type(e)]
        left, right = self.node(e.this), self.node(e.expression)
        return self.binary_numeric(op, left, right, _sql(e))

    def binary_numeric(self, op: str, left: Node, right: Node, sql: str) -> Node:
        for side in (left, right):
            self.numeric(side, sql, f"'{op}'")
        typ = self.common([left, right], sql, f"'{op}'")
        if typ == T.VOID:
            typ = T.INT if op in ("mod", "pmod") else T.DOUBLE
        left, right = self.cast(left, typ, sql), self.cast(right, typ, sql)
        return Node(op, typ, (left, right), {"ansi": self.ansi})

    def divide(self, e: exp.Div) -> Node:
        left, right = self.node(e.this), self.node(e.expression)
        return self.make_divide(left, right, _sql(e), try_=False)

    def make_divide(self, left: Node, right: Node, sql: str, try_: bool) -> Node:
        for side in (left, right):
            self.numeric(side, sql, "'/'")
        if T.DECIMAL in (left.type, right.type) and self.common([left, right], sql, "'/'") != T.DOUBLE:
            raise _decimal(sql)
        left, right = self.cast(left, T.DOUBLE, sql), self.cast(right, T.DOUBLE, sql)
        return Node("divide", T.DOUBLE, (left, right), {"ansi": self.ansi and not try_})

    def int_divide(self, e: exp.IntDiv) -> Node:
        left, right = self.node(e.this), self.node(e.expression)
        for side in (left, right):
            if side.type not in T.INTEGRAL + (T.VOID,):
                raise SqlCompileError(
                    f"`{_sql(e)}`: div needs int or bigint operands, got {side.type}; CAST them"
                )
        left, right = self.cast(left, T.BIGINT, _sql(e)), self.cast(right, T.BIGINT, _sql(e))
        return Node("int_divide", T.BIGINT, (left, right), {"ansi": self.ansi})

    def comparison(self, e: exp.Binary) -> Node:
        return self.compare(_COMPARISONS[type(e)], self.node(e.this), self.node(e.expression), _sql(e))

    def compare(self, op: str, left: Node, right: Node, sql: str) -> Node:
        typ = self.common([left, right], sql, "a comparison")
        if typ == T.VOID:
            typ = T.BOOLEAN
        return Node(op, T.BOOLEAN, (self.cast(left, typ, sql), self.cast(right, typ, sql)))

    def logic(self, e: exp.Connector) -> Node:
        args = [self.boolean(self.node(x), _sql(e)) for x in (e.this, e.expression)]
        return Node("and" if isinstance(e, exp.And) else "or", T.BOOLEAN, tuple(args))

    def boolean(self, node: Node, sql: str) -> Node:
        if node.type not in (T.BOOLEAN, T.VOID):
            raise SqlCompileError(f"`{sql}`: needs a boolean, got {node.type}")
        return self.cast(node, T.BOOLEAN, sql)

    def not_(self, e: exp.Not) -> Node:
        return Node("not", T.BOOLEAN, (self.boolean(self.node(e.this), _sql(e)),))

    def is_(self, e: exp.Is) -> Node:
        if not isinstance(e.expression, exp.Null):
            raise SqlCompileError(f"`{_sql(e)}`: only IS [NOT] NULL is supported")
        return Node("is_null", T.BOOLEAN, (self.node(e.this),))

    def in_(self, e: exp.In) -> Node:
        if e.args.get("query") or e.args.get("unnest") or e.args.get("field"):
            raise SqlCompileError(f"`{_sql(e)}`: IN takes a list of values here, not a subquery")
        value, items = self.node(e.this), self.nodes(e.expressions)
        typ = self.common([value, *items], _sql(e), "IN")
        typ = T.BOOLEAN if typ == T.VOID else typ
        args = tuple(self.cast(n, typ, _sql(e)) for n in (value, *items))
        return Node("in", T.BOOLEAN, args)

    def between(self, e: exp.Between) -> Node:
        value, low, high = self.node(e.this), self.node(e.args["low"]), self.node(e.args["high"])
        sql = _sql(e)
        return Node(
            "and", T.BOOLEAN, (self.compare("gte", value, low, sql), self.compare("lte", value, high, sql))
        )

    def paren(self, e: exp.Paren) -> Node:
        return self.node(e.this)

    def null(self, e: exp.Null) -> Node:
        return lit(None, T.VOID)

    def boolean_literal(self, e: exp.Boolean) -> Node:
        return lit(bool(e.this), T.BOOLEAN)

    # ---- conditionals ------------------------------------------------------------------------

    def case(self, e: exp.Case) -> Node:
        sql = _sql(e)
        subject = self.node(e.this) if e.this is not None else None
        conditions, values = [], []
        for branch in e.args.get("ifs") or []:
            when = self.node(branch.this)
            conditions.append(
                self.compare("eq", subject, when, sql) if subject is not None else self.boolean(when, sql)
            )
            values.append(self.node(branch.args["true"]))
        default = self.node(e.args["default"]) if e.args.get("default") is not None else lit(None, T.VOID)
        typ = self.common([*values, default], sql, "CASE")
        values = [self.cast(v, typ, sql) for v in (*values, default)]
        args = [x for pair in zip(conditions, values, strict=False) for x in pair] + [values[-1]]
        return Node("case", typ, tuple(args))

    def if_(self, e: exp.If) -> Node:
        sql = _sql(e)
        condition = self.boolean(self.node(e.this), sql)
        a = self.node(e.args["true"])
        b = self.node(e.args["false"]) if e.args.get("false") is not None else lit(None, T.VOID)
        typ = self.common([a, b], sql, "IF")
        return Node("case", typ, (condition, self.cast(a, typ, sql), self.cast(b, typ, sql)))

    def try_cast(self, e: exp.Cast) -> Node:
        sql = _sql(e)
        to: exp.DataType = e.args["to"]
        target = _CAST_TARGETS.get(to.this)
        if target is None or to.expressions and target != T.DECIMAL:
            raise SqlCompileError(
                f"`{sql}`: cannot cast to {to.sql(dialect='spark')}; supported targets: "
                "int, bigint, float, double, string, boolean, date, timestamp"
            )
        child = self.node(e.this)
        if target == T.DECIMAL:
            raise _decimal(sql)
        safe = isinstance(e, exp.TryCast) and bool(e.args.get("safe"))
        if child.type == T.VOID:
            return lit(None, target)
        if child.type == T.DECIMAL:
            return self._decimal_literal_as(child, target, sql)
        if child.op == "literal" and child.type in T.NUMERIC and target in T.NUMERIC and not safe:
            # a typed literal such as 10L or 0.1D: fold it (0.1D is parsed as CAST(0.1 AS DOUBLE))
            pass
        mode = "try" if safe else self.cast_mode
        return self.cast(child, target, sql, mode=mode) if child.type != target else child

    # ---- functions ---------------------------------------------------------------------------

    def anonymous(self, e: exp.Anonymous) -> Node:
        name = str(e.this).lower()
        return self.call_named(name, list(e.expressions), _sql(e))

    def call_named(self, name: str, raw_args: list, sql: str) -> Node:
        if name in NON_DETERMINISTIC:
            raise SqlCompileError(
                f"`{sql}`: {name} is non-deterministic (it {NON_DETERMINISTIC[name]}), so Spark and the "
                "compiled "
                "side would disagree by design; compute it before the job or pass it in as a column"
            )
        rule = FUNCTIONS.get(name)
        if rule is None:
            raise SqlCompileError(f"`{sql}`: unsupported function {name}; supported: {supported()}")
        if any(isinstance(a, (exp.Star, exp.Lambda)) for a in raw_args):
            raise SqlCompileError(f"`{sql}`: {name} takes values here")
        return rule(self, self.nodes(raw_args), sql)

    def trim(self, e: exp.Trim) -> Node:
        sql = _sql(e)
        position = (e.args.get("position") or "BOTH").upper()
        chars = " "
        if e.expression is not None:
            chars = self.literal_value(self.node(e.expression), sql, "the trim characters", (T.STRING,))
            if chars is None:
                return lit(None, T.STRING)
        op = {"BOTH": "trim", "LEADING": "ltrim", "TRAILING": "rtrim"}[position]
        return Node(
            "trim", T.STRING, (self.string_arg(self.node(e.this), sql),), {"side": op, "chars": chars}
        )

    def substring(self, e: exp.Substring) -> Node:
        args = [self.node(e.this), self.node(e.args["start"])]
        if e.args.get("length") is not None:
            args.append(self.node(e.args["length"]))
        return FUNCTIONS["substring"](self, args, _sql(e))

    def position(self, e: exp.StrPosition) -> Node:
        if e.args.get("position") is not None:
            raise SqlCompileError(f"`{_sql(e)}`: the start position of instr/position is not supported")
        return FUNCTIONS["instr"](self, [self.node(e.this), self.node(e.args["substr"])], _sql(e))

    def floor_ceil(self, e: exp.Floor | exp.Ceil) -> Node:
        args = [self.node(e.this)]
        if e.args.get("decimals") is not None:
            args.append(self.node(e.args["decimals"]))
        return FUNCTIONS["floor" if isinstance(e, exp.Floor) else "ceil"](self, args, _sql(e))

    def rlike(self, e: exp.RegexpLike) -> Node:
        return FUNCTIONS["rlike"](self, [self.node(e.this), self.node(e.expression)], _sql(e))

    def dpipe(self, e: exp.DPipe) -> Node:
        return FUNCTIONS["concat"](self, [self.node(e.this), self.node(e.expression)], _sql(e))

    def concat_literals(self, e: exp.Concat) -> Node:
        # 'it''s': Spark concatenates adjacent string literals
        parts = self.nodes(e.expressions)
        if all(p.op == "literal" and p.type == T.STRING for p in parts):
            return lit("".join(p.params["value"] for p in parts), T.STRING)
        return FUNCTIONS["concat"](self, parts, _sql(e))


def _number(text: str, negative: bool, sql: str) -> Node:
    """A numeric literal typed as Spark types it: int, then bigint, else decimal; 1e3 is a double."""
    sign = -1 if negative else 1
    if re.fullmatch(r"\d+", text):
        value = sign * int(text)
        for typ in T.INTEGRAL:
            low, high = T.INT_RANGE[typ]
            if low <= value <= high:
                return lit(value, typ)
        return lit(Decimal(value), T.DECIMAL)
    if "e" in text.lower():
        return lit(sign * float(text), T.DOUBLE)
    try:
        return lit(sign * Decimal(text), T.DECIMAL)
    except ArithmeticError:
        raise SqlCompileError(f"`{sql}`: cannot read the number {text}") from None


_RULES: dict[type, Callable[[_Checker, exp.Expression], Node]] = {
    exp.Column: _Checker.column,
    exp.Literal: _Checker.literal,
    exp.Null: _Checker.null,
    exp.Boolean: _Checker.boolean_literal,
    exp.Paren: _Checker.paren,
    exp.Neg: _Checker.neg,
    exp.Add: _Checker.arithmetic,
    exp.Sub: _Checker.arithmetic,
    exp.Mul: _Checker.arithmetic,
    exp.Mod: _Checker.arithmetic,
    exp.Div: _Checker.divide,
    exp.IntDiv: _Checker.int_divide,
    **{cls: _Checker.comparison for cls in _COMPARISONS},
    exp.And: _Checker.logic,
    exp.Or: _Checker.logic,
    exp.Not: _Checker.not_,
    exp.Is: _Checker.is_,
    exp.In: _Checker.in_,
    exp.Between: _Checker.between,
    exp.Case: _Checker.case,
    exp.If: _Checker.if_,
    exp.Cast: _Checker.try_cast,  # TryCast and Cast; sqlglot reads Spark's CAST as TryCast without safe
    exp.Anonymous: _Checker.anonymous,
    exp.Trim: _Checker.trim,
    exp.Substring: _Checker.substring,
    exp.StrPosition: _Checker.position,
    exp.RegexpLike: _Checker.rlike,
    exp.Floor: _Checker.floor_ceil,
    exp.Ceil: _Checker.floor_ceil,
    exp.DPipe: _Checker.dpipe,
    exp.Concat: _Checker.concat_literals,
}


def _cast_list() -> str:
    return "; ".join(f"{src} -> {', '.join(sorted(dst - {src}))}" for src, dst in _CASTS.items())


def supported() -> str:
    """The supported functions and operators, for error messages and the README."""
    operators = (
        "+ - * / % div, unary -, = <> != < <= > >= <=>, AND OR NOT, IS [NOT] NULL, IN, BETWEEN, CASE, "
        "CAST, try_cast"
    )
    return f"{operators}, {', '.join(sorted(FUNCTIONS))}"


from common.sql.functions import FUNCTIONS  # noqa: E402
from common.sql.regex import translate_pattern  # noqa: E402  (the function table needs _Checker's helpers)
