"""The analyzer: types a sqlglot tree as Spark's analyzer would, node by node, into ``Node``s.

``Checker`` decides each node's Spark type, inserts the implicit casts Spark's analyzer would, and
refuses what it cannot reproduce exactly: unknown and non-deterministic functions, decimal results,
mixes whose coercion differs between ANSI modes. Function calls go to ``FUNCTIONS``, the registry
that ``common.sql.functions`` fills (one rule per function, registered with ``function``);
``common.sql.typecheck`` is the entry that parses and runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal

from sqlglot import exp

from common.sql import types as T
from common.sql.errors import SqlCompileError
from common.sql.nodes import Node, lit

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


Rule = Callable[["Checker", list, str], Node]
#: function name -> the rule that checks its arguments and types the call (``common.sql.functions``).
FUNCTIONS: dict[str, Rule] = {}


def function(*names: str, arity: tuple[int, int | None]):
    """Registers a rule for the function ``names`` (aliases share it), taking ``arity`` (low, high
    or None) arguments."""
    low, high = arity

    def register(fn):
        def checked(c: Checker, args: list, sql: str) -> Node:
            if len(args) < low or (high is not None and len(args) > high):
                want = f"{low}" if low == high else f"{low} to {high}" if high else f"at least {low}"
                raise SqlCompileError(f"`{sql}`: {names[0]} takes {want} argument(s), got {len(args)}")
            return fn(c, args, sql)

        for name in names:
            FUNCTIONS[name] = checked
        return fn

    return register


def _is_null(node: Node) -> bool:
    return node.op == "literal" and node.params["value"] is None


def _null_intolerant(op: str) -> bool:
    """What the op's kernel declares (``common.sql.vec.Op``); read only for a call with a NULL
    argument, so that typing an expression loads the kernels (and torch) only then."""
    from common.sql.evaluate import OPS

    return OPS[op].null_intolerant


def _upcast(a: str, b: str) -> bool:
    """Spark's legal numeric upcast (int < bigint < float < double), lossy to float included."""
    order = (T.INT, T.BIGINT, T.FLOAT, T.DOUBLE)
    return a in order and b in order and order.index(a) < order.index(b)


def decimal_error(sql: str) -> SqlCompileError:
    """The refusal of an expression that Spark would compute in DECIMAL."""
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


def sql_text(e: exp.Expression) -> _Sql:
    """``e`` as Spark SQL text, rendered only if a message is built."""
    return _Sql(e)


class Checker:
    """Types one expression against ``columns`` (name -> Spark type) for one ANSI mode."""

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
                if any(_is_null(a) for a in node.args) and _null_intolerant(node.op):
                    return lit(None, node.type)  # Spark's NullPropagation: nothing else is evaluated
                return node
        raise SqlCompileError(
            f"unsupported syntax `{sql_text(e)}` ({type(e).__name__}); supported: {supported()}"
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
            raise decimal_error(sql)
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
        raise decimal_error(sql)

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
            raise decimal_error(sql)
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
                f"`{sql_text(e)}`: qualified names are not supported; backquote a name with dots"
            )
        name = e.name
        if name not in self.columns:
            if not e.this.quoted and name.lower() in NON_DETERMINISTIC:
                return self.call_named(name.lower(), [], sql_text(e))
            raise SqlCompileError(f'unknown column "{name}"; available: {", ".join(self.columns) or "none"}')
        return Node("column", self.columns[name], params={"name": name})

    def literal(self, e: exp.Literal) -> Node:
        text = e.this
        if e.is_string:
            return lit(text, T.STRING)
        return _number(text, negative=False, sql=sql_text(e))

    def neg(self, e: exp.Neg) -> Node:
        inner = e.this
        if isinstance(inner, exp.Literal) and not inner.is_string:
            return _number(inner.this, negative=True, sql=sql_text(e))
        child = self.numeric(self.node(inner), sql_text(e), "unary minus")
        if child.type == T.DECIMAL:
            return lit(-child.params["value"], T.DECIMAL)
        return Node("neg", child.type, (child,), {"ansi": self.ansi})

    # ---- operators ---------------------------------------------------------------------------

    def arithmetic(self, e: exp.Binary) -> Node:
        op = _ARITHMETIC[type(e)]
        left, right = self.node(e.this), self.node(e.expression)
        return self.binary_numeric(op, left, right, sql_text(e))

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
        return self.make_divide(left, right, sql_text(e), try_=False)

    def make_divide(self, left: Node, right: Node, sql: str, try_: bool) -> Node:
        for side in (left, right):
            self.numeric(side, sql, "'/'")
        if T.DECIMAL in (left.type, right.type) and self.common([left, right], sql, "'/'") != T.DOUBLE:
            raise decimal_error(sql)
        left, right = self.cast(left, T.DOUBLE, sql), self.cast(right, T.DOUBLE, sql)
        return Node("divide", T.DOUBLE, (left, right), {"ansi": self.ansi and not try_})

    def int_divide(self, e: exp.IntDiv) -> Node:
        left, right = self.node(e.this), self.node(e.expression)
        for side in (left, right):
            if side.type not in T.INTEGRAL + (T.VOID,):
                raise SqlCompileError(
                    f"`{sql_text(e)}`: div needs int or bigint operands, got {side.type}; CAST them"
                )
        left, right = self.cast(left, T.BIGINT, sql_text(e)), self.cast(right, T.BIGINT, sql_text(e))
        return Node("int_divide", T.BIGINT, (left, right), {"ansi": self.ansi})

    def comparison(self, e: exp.Binary) -> Node:
        return self.compare(_COMPARISONS[type(e)], self.node(e.this), self.node(e.expression), sql_text(e))

    def compare(self, op: str, left: Node, right: Node, sql: str) -> Node:
        typ = self.common([left, right], sql, "a comparison")
        if typ == T.VOID:
            typ = T.BOOLEAN
        return Node(op, T.BOOLEAN, (self.cast(left, typ, sql), self.cast(right, typ, sql)))

    def logic(self, e: exp.Connector) -> Node:
        args = [self.boolean(self.node(x), sql_text(e)) for x in (e.this, e.expression)]
        return Node("and" if isinstance(e, exp.And) else "or", T.BOOLEAN, tuple(args))

    def boolean(self, node: Node, sql: str) -> Node:
        if node.type not in (T.BOOLEAN, T.VOID):
            raise SqlCompileError(f"`{sql}`: needs a boolean, got {node.type}")
        return self.cast(node, T.BOOLEAN, sql)

    def not_(self, e: exp.Not) -> Node:
        return Node("not", T.BOOLEAN, (self.boolean(self.node(e.this), sql_text(e)),))

    def is_(self, e: exp.Is) -> Node:
        if not isinstance(e.expression, exp.Null):
            raise SqlCompileError(f"`{sql_text(e)}`: only IS [NOT] NULL is supported")
        return Node("is_null", T.BOOLEAN, (self.node(e.this),))

    def in_(self, e: exp.In) -> Node:
        if e.args.get("query") or e.args.get("unnest") or e.args.get("field"):
            raise SqlCompileError(f"`{sql_text(e)}`: IN takes a list of values here, not a subquery")
        value, items = self.node(e.this), self.nodes(e.expressions)
        typ = self.common([value, *items], sql_text(e), "IN")
        typ = T.BOOLEAN if typ == T.VOID else typ
        args = tuple(self.cast(n, typ, sql_text(e)) for n in (value, *items))
        return Node("in", T.BOOLEAN, args)

    def between(self, e: exp.Between) -> Node:
        value, low, high = self.node(e.this), self.node(e.args["low"]), self.node(e.args["high"])
        sql = sql_text(e)
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
        sql = sql_text(e)
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
        sql = sql_text(e)
        condition = self.boolean(self.node(e.this), sql)
        a = self.node(e.args["true"])
        b = self.node(e.args["false"]) if e.args.get("false") is not None else lit(None, T.VOID)
        typ = self.common([a, b], sql, "IF")
        return Node("case", typ, (condition, self.cast(a, typ, sql), self.cast(b, typ, sql)))

    def try_cast(self, e: exp.Cast) -> Node:
        sql = sql_text(e)
        to: exp.DataType = e.args["to"]
        target = _CAST_TARGETS.get(to.this)
        if target is None or to.expressions and target != T.DECIMAL:
            raise SqlCompileError(
                f"`{sql}`: cannot cast to {to.sql(dialect='spark')}; supported targets: "
                "int, bigint, float, double, string, boolean, date, timestamp"
            )
        child = self.node(e.this)
        if target == T.DECIMAL:
            raise decimal_error(sql)
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
        return self.call_named(name, list(e.expressions), sql_text(e))

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
        sql = sql_text(e)
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
        return FUNCTIONS["substring"](self, args, sql_text(e))

    def position(self, e: exp.StrPosition) -> Node:
        if e.args.get("position") is not None:
            raise SqlCompileError(f"`{sql_text(e)}`: the start position of instr/position is not supported")
        return FUNCTIONS["instr"](self, [self.node(e.this), self.node(e.args["substr"])], sql_text(e))

    def floor_ceil(self, e: exp.Floor | exp.Ceil) -> Node:
        args = [self.node(e.this)]
        if e.args.get("decimals") is not None:
            args.append(self.node(e.args["decimals"]))
        return FUNCTIONS["floor" if isinstance(e, exp.Floor) else "ceil"](self, args, sql_text(e))

    def rlike(self, e: exp.RegexpLike) -> Node:
        return FUNCTIONS["rlike"](self, [self.node(e.this), self.node(e.expression)], sql_text(e))

    def dpipe(self, e: exp.DPipe) -> Node:
        return FUNCTIONS["concat"](self, [self.node(e.this), self.node(e.expression)], sql_text(e))

    def concat_literals(self, e: exp.Concat) -> Node:
        # 'it''s': Spark concatenates adjacent string literals
        parts = self.nodes(e.expressions)
        if all(p.op == "literal" and p.type == T.STRING for p in parts):
            return lit("".join(p.params["value"] for p in parts), T.STRING)
        return FUNCTIONS["concat"](self, parts, sql_text(e))


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


_RULES: dict[type, Callable[[Checker, exp.Expression], Node]] = {
    exp.Column: Checker.column,
    exp.Literal: Checker.literal,
    exp.Null: Checker.null,
    exp.Boolean: Checker.boolean_literal,
    exp.Paren: Checker.paren,
    exp.Neg: Checker.neg,
    exp.Add: Checker.arithmetic,
    exp.Sub: Checker.arithmetic,
    exp.Mul: Checker.arithmetic,
    exp.Mod: Checker.arithmetic,
    exp.Div: Checker.divide,
    exp.IntDiv: Checker.int_divide,
    **{cls: Checker.comparison for cls in _COMPARISONS},
    exp.And: Checker.logic,
    exp.Or: Checker.logic,
    exp.Not: Checker.not_,
    exp.Is: Checker.is_,
    exp.In: Checker.in_,
    exp.Between: Checker.between,
    exp.Case: Checker.case,
    exp.If: Checker.if_,
    exp.Cast: Checker.try_cast,  # TryCast and Cast; sqlglot reads Spark's CAST as TryCast without safe
    exp.Anonymous: Checker.anonymous,
    exp.Trim: Checker.trim,
    exp.Substring: Checker.substring,
    exp.StrPosition: Checker.position,
    exp.RegexpLike: Checker.rlike,
    exp.Floor: Checker.floor_ceil,
    exp.Ceil: Checker.floor_ceil,
    exp.DPipe: Checker.dpipe,
    exp.Concat: Checker.concat_literals,
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
