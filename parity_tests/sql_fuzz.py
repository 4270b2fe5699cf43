# ruff: noqa: E501  (the grammar reads best one production per line)
"""Differential testing of the SQL compiler against Spark: a trap table, a generator of random
well-typed expressions, and a runner that evaluates each through Spark's ``selectExpr`` and through
``common.sql`` and reports every disagreement as a minimal reproduction.

Results must be identical (types, nulls, NaN, -0.0, error classes) except at the root of a
transcendental function, where the distance in ULPs may reach ``ULP_BUDGET[function]`` (Spark uses
Java's StrictMath/fdlibm, torch its own vectorised libm). Transcendental calls are generated only
at the root, so that a last-bit difference cannot be amplified by what is computed from it.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import math
import random
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from common.sql import SqlCompileError, compile_sql
from common.sql.errors import ERROR_CLASSES
from common.sql.typecheck import check
from common.sql.types import sql_type_of_arrow

# Declared and kept as small as measured (README: "Spark SQL expressions", transcendental functions).
ULP_BUDGET = {"exp": 1, "expm1": 1, "ln": 1, "log": 3, "log10": 1, "log2": 2, "log1p": 1, "pow": 1}

I32 = [0, 1, -1, 2, 3, -7, 7, 100, -100, 46341, 65536, 2**31 - 1, -(2**31), 2**31 - 2, -(2**31) + 1, None]
I64 = [0, 1, -1, 3, -3, 10**18, -(10**18), 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 2**62, 5 * 10**18, None]
F64 = [
    0.0,
    -0.0,
    1.5,
    -2.5,
    2.675,
    0.1,
    0.5,
    3.0,
    -7.0,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e-308,
    5e-324,
    1e16,
    1e7,
    123456.789,
    2.0**53,
    2.5,
    0.285,
    -0.001,
    9.3e18,
    -3e9,
    1e-5,
    None,
]
F32 = [0.0, -0.0, 1.5, -2.5, 0.1, math.nan, math.inf, -math.inf, 3.4e38, 1e-45, 16777217.0, 2.5, -7.0, None]
STRINGS = [
    None,
    "",
    " ",
    "  a b  ",
    "abc",
    "ABC",
    "straße",
    "ΟΔΟΣ",
    "héllo😀",
    "12",
    " 42 ",
    "-7",
    "1.5",
    "1e3",
    ".5",
    "nan",
    "Infinity",
    "-inf",
    "true",
    "yes",
    "N",
    "2021-03-14",
    "2021-03-14 02:30:00",
    "2020-02-30",
    "\t x\n",
    "a,b,,c",
    "İ",
    "ﬁ",
    "x\u00a0y",
    "9223372036854775808",
    "+7",
    "abc\n",
    "a.b",
    "2021-1-1",
    "0x1.8p1",
]
BOOLS = [True, False, None]
DATES = [
    dt.date(1970, 1, 1),
    dt.date(2021, 1, 3),
    dt.date(2020, 2, 29),
    dt.date(1969, 12, 31),
    dt.date(1900, 3, 1),
    dt.date(2400, 12, 31),
    dt.date(1, 1, 1),
    dt.date(9999, 12, 31),
    dt.date(2021, 3, 14),
    dt.date(2026, 12, 28),
    None,
]
_UTC = dt.UTC
TIMESTAMPS = [
    dt.datetime(2021, 3, 14, 6, 59, 59, tzinfo=_UTC),
    dt.datetime(2021, 3, 14, 7, 0, 0, tzinfo=_UTC),
    dt.datetime(2021, 11, 7, 5, 30, tzinfo=_UTC),
    dt.datetime(2021, 11, 7, 6, 30, tzinfo=_UTC),
    dt.datetime(1960, 1, 1, 0, 0, 0, 123456, tzinfo=_UTC),
    dt.datetime(1970, 1, 1, tzinfo=_UTC),
    dt.datetime(2021, 3, 28, 1, 0, tzinfo=_UTC),
    dt.datetime(2021, 3, 14, 2, 30, tzinfo=_UTC),
    dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=_UTC),
    dt.datetime(1900, 12, 31, 23, 59, 59, 999999, tzinfo=_UTC),
    None,
]

# name -> (Spark type, Arrow type, trap values)
COLUMNS = {
    "i1": ("int", pa.int32(), I32),
    "i2": ("int", pa.int32(), I32),
    "l1": ("bigint", pa.int64(), I64),
    "l2": ("bigint", pa.int64(), I64),
    "d1": ("double", pa.float64(), F64),
    "d2": ("double", pa.float64(), F64),
    "f1": ("float", pa.float32(), F32),
    "s1": ("string", pa.string(), STRINGS),
    "s2": ("string", pa.string(), STRINGS),
    "b1": ("boolean", pa.bool_(), BOOLS),
    "dt1": ("date", pa.date32(), DATES),
    "dt2": ("date", pa.date32(), DATES),
    "ts1": ("timestamp", pa.timestamp("us", tz="UTC"), TIMESTAMPS),
}


def trap_table(rows: int = 64) -> pa.Table:
    """Every column cycles through its traps with a different stride, so that rows combine them."""
    arrays = {"rid": pa.array(range(rows), pa.int32())}
    for k, (name, (_, arrow, values)) in enumerate(COLUMNS.items()):
        stride = [1, 5, 7, 11, 13, 3][k % 6]
        arrays[name] = pa.array([values[(r * stride + k) % len(values)] for r in range(rows)], arrow)
    return pa.table(arrays)


# ---- the generator -----------------------------------------------------------------------------

_TYPES = ("int", "bigint", "double", "float", "string", "boolean", "date", "timestamp")
_ZONES = ("America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "UTC", "Asia/Kolkata")
_EXTRACTS = ("([a-z]+)", "(\\\\d+)", "a(b|c)?", "([A-Z])([a-z]*)")
_REGEXES = (
    "[a-z]+",
    "^a",
    "b$",
    "(\\\\d+)",
    "a(b|c)?",
    "\\\\s+",
    "[^a-c]",
    ".b",
    "([A-Z])([a-z]*)",
    "x|y",
    "\\\\d{2,}",
)


class Generator:
    """Random expressions of a requested Spark type, depth-bounded, over the trap table's columns."""

    def __init__(self, rng: random.Random, max_depth: int = 3):
        self.rng = rng
        self.max_depth = max_depth
        self.by_type: dict[str, list[str]] = {}
        for name, (typ, _, _) in COLUMNS.items():
            self.by_type.setdefault(typ, []).append(name)

    def root(self) -> str:
        if self.rng.random() < 0.12:
            fn = self.rng.choice(sorted(ULP_BUDGET))
            x = self.expr("double", 1)
            if fn == "pow":
                return f"pow({x}, {self.expr('double', 2)})"
            if fn == "log":
                return f"log({self.expr('double', 2)}, {x})"
            return f"{fn}({x})"
        if self.rng.random() < 0.03:  # Java 17 may print a digit more than the shortest: root only
            return f"CAST({self.expr(self.rng.choice(['double', 'float']), 1)} AS STRING)"
        return self.expr(self.rng.choice(_TYPES), 0)

    def expr(self, typ: str, depth: int) -> str:
        if depth >= self.max_depth or self.rng.random() < 0.25 + 0.15 * depth:
            return self.leaf(typ)
        return getattr(self, f"_{typ}")(depth + 1)

    def leaf(self, typ: str) -> str:
        r = self.rng
        if r.random() < 0.8 or typ == "float":
            return r.choice(self.by_type[typ])
        return {
            "int": lambda: r.choice(["0", "1", "-1", "3", "2147483647", "-2147483648", "CAST(NULL AS INT)"]),
            "bigint": lambda: r.choice(
                ["0L", "3L", "9223372036854775807L", "CAST(NULL AS BIGINT)", "2147483648"]
            ),
            "double": lambda: r.choice(["0.0D", "1.5D", "-0.0D", "CAST('NaN' AS DOUBLE)", "1e300", "0.1D"]),
            "string": lambda: r.choice(["''", "'abc'", "' x '", "'ß'", "CAST(NULL AS STRING)"]),
            "boolean": lambda: r.choice(["true", "false", "CAST(NULL AS BOOLEAN)"]),
            "date": lambda: r.choice(["DATE'2020-02-29'", "DATE'1969-12-31'"]),
            "timestamp": lambda: r.choice(
                ["TIMESTAMP'2021-03-14 07:00:00'", "TIMESTAMP'1969-12-31 23:59:59.5'"]
            ),
        }[typ]()

    def _pick(self, options, depth):
        return self.rng.choice(options)(depth)

    def _num(self, depth):
        return self.expr(self.rng.choice(["int", "bigint", "double"]), depth)

    def _int(self, d):
        e, r = self.expr, self.rng
        return self._pick(
            [
                lambda d: f"({e('int', d)} {r.choice(['+', '-', '*', '%'])} {e('int', d)})",
                lambda d: f"(- {e('int', d)})",
                lambda d: f"abs({e('int', d)})",
                lambda d: f"pmod({e('int', d)}, {e('int', d)})",
                lambda d: f"length({e('string', d)})",
                lambda d: f"instr({e('string', d)}, '{r.choice(['a', 'b', '', 'ß'])}')",
                lambda d: (
                    f"{r.choice(['year', 'month', 'dayofmonth', 'dayofweek', 'dayofyear', 'weekofyear'])}({e('date', d)})"
                ),
                lambda d: f"{r.choice(['hour', 'minute', 'second'])}({e('timestamp', d)})",
                lambda d: f"datediff({e('date', d)}, {e('date', d)})",
                lambda d: f"hash({', '.join(e(r.choice(_TYPES), d) for _ in range(r.randint(1, 3)))})",
                lambda d: (
                    f"{r.choice(['CAST', 'try_cast'])}({e(r.choice(['bigint', 'double', 'float', 'string', 'boolean']), d)} AS INT)"
                ),
                lambda d: f"CASE WHEN {e('boolean', d)} THEN {e('int', d)} ELSE {e('int', d)} END",
                lambda d: (
                    f"{r.choice(['coalesce', 'nvl', 'nullif', 'greatest', 'least'])}({e('int', d)}, {e('int', d)})"
                ),
                lambda d: f"{r.choice(['round', 'bround'])}({e('int', d)}, {r.choice([-1, -2, -9, 0, 1])})",
                lambda d: f"if({e('boolean', d)}, {e('int', d)}, {e('int', d)})",
            ],
            d,
        )

    def _bigint(self, d):
        e, r = self.expr, self.rng
        return self._pick(
            [
                lambda d: (
                    f"({e('bigint', d)} {r.choice(['+', '-', '*', '%'])} {e(r.choice(['int', 'bigint']), d)})"
                ),
                lambda d: f"({e(r.choice(['int', 'bigint']), d)} div {e(r.choice(['int', 'bigint']), d)})",
                lambda d: f"{r.choice(['floor', 'ceil'])}({e(r.choice(['double', 'float', 'int']), d)})",
                lambda d: f"xxhash64({', '.join(e(r.choice(_TYPES), d) for _ in range(r.randint(1, 3)))})",
                lambda d: f"crc32({e('string', d)})",
                lambda d: f"unix_timestamp({e('timestamp', d)})",
                lambda d: (
                    f"{r.choice(['CAST', 'try_cast'])}({e(r.choice(['int', 'double', 'float', 'string']), d)} AS BIGINT)"
                ),
                lambda d: f"(- {e('bigint', d)})",
                lambda d: f"abs({e('bigint', d)})",
                lambda d: f"{r.choice(['greatest', 'least', 'coalesce'])}({e('bigint', d)}, {e('int', d)})",
                lambda d: f"{r.choice(['round', 'bround'])}({e('bigint', d)}, {r.choice([-1, -18, -19, 2])})",
            ],
            d,
        )

    def _double(self, d):
        e, r = self.expr, self.rng
        return self._pick(
            [
                lambda d: f"({e('double', d)} {r.choice(['+', '-', '*', '%'])} {self._num(d)})",
                lambda d: f"({self._num(d)} / {self._num(d)})",
                lambda d: f"try_divide({self._num(d)}, {self._num(d)})",
                lambda d: f"sqrt({e('double', d)})",
                lambda d: f"sign({e('double', d)})",
                lambda d: f"(- {e('double', d)})",
                lambda d: f"{r.choice(['round', 'bround'])}({e('double', d)}, {r.choice([0, 1, 2, -1, 5])})",
                lambda d: f"nanvl({e('double', d)}, {e('double', d)})",
                lambda d: (
                    f"{r.choice(['CAST', 'try_cast'])}({e(r.choice(['int', 'bigint', 'float', 'string', 'boolean']), d)} AS DOUBLE)"
                ),
                lambda d: f"({r.choice(['1.5', '0.1', '-2.25'])} * {e('double', d)})",
                lambda d: f"({e('int', d)} {r.choice(['+', '*'])} {e('double', d)})",
                lambda d: (
                    f"{r.choice(['greatest', 'least', 'coalesce'])}({e('double', d)}, {e('double', d)}, {e('int', d)})"
                ),
                lambda d: (
                    f"CASE WHEN {e('boolean', d)} THEN {e('double', d)} WHEN {e('boolean', d)} THEN {e('double', d)} END"
                ),
                lambda d: f"abs({e('double', d)})",
            ],
            d,
        )

    def _float(self, d):
        e, r = self.expr, self.rng
        return self._pick(
            [
                lambda d: (
                    f"({e('float', d)} {r.choice(['+', '-', '*', '%'])} {e(r.choice(['float', 'int']), d)})"
                ),
                lambda d: (
                    f"{r.choice(['CAST', 'try_cast'])}({e(r.choice(['double', 'int', 'bigint', 'string']), d)} AS FLOAT)"
                ),
                lambda d: f"round({e('float', d)}, {r.choice([0, 1, 2])})",
            ],
            d,
        )

    def _boolean(self, d):
        e, r = self.expr, self.rng
        t = r.choice(_TYPES)
        return self._pick(
            [
                lambda d: f"({e(t, d)} {r.choice(['=', '<>', '<', '<=', '>', '>=', '<=>'])} {e(t, d)})",
                lambda d: f"({e('boolean', d)} {r.choice(['AND', 'OR'])} {e('boolean', d)})",
                lambda d: f"(NOT {e('boolean', d)})",
                lambda d: f"({e(t, d)} IS {r.choice(['', 'NOT '])}NULL)",
                lambda d: (
                    f"({e(t, d)} {r.choice(['', 'NOT '])}IN ({', '.join(e(t, d) for _ in range(r.randint(1, 3)))}))"
                ),
                lambda d: f"({e(t, d)} BETWEEN {e(t, d)} AND {e(t, d)})",
                lambda d: f"isnan({e('double', d)})",
                lambda d: (
                    f"{r.choice(['startswith', 'endswith', 'contains'])}({e('string', d)}, '{r.choice(['a', '', 'b ', 'ß'])}')"
                ),
                lambda d: f"({e('string', d)} rlike '{r.choice(_REGEXES)}')",
                lambda d: (
                    f"{r.choice(['CAST', 'try_cast'])}({e(r.choice(['int', 'double', 'string']), d)} AS BOOLEAN)"
                ),
            ],
            d,
        )

    def _string(self, d):
        e, r = self.expr, self.rng
        return self._pick(
            [
                lambda d: f"{r.choice(['lower', 'upper', 'trim', 'ltrim', 'rtrim'])}({e('string', d)})",
                lambda d: (
                    f"substring({e('string', d)}, {r.choice([0, 1, 2, -1, -3, -9])}, {r.choice([1, 2, 5, 0, -1])})"
                ),
                lambda d: f"substr({e('string', d)}, {r.choice([1, 3, -2])})",
                lambda d: f"concat({e('string', d)}, {e(r.choice(['string', 'int', 'date']), d)})",
                lambda d: f"concat_ws('{r.choice(['-', '', ', '])}', {e('string', d)}, {e('string', d)})",
                lambda d: f"({e('string', d)} || {e('string', d)})",
                lambda d: (
                    f"{r.choice(['lpad', 'rpad'])}({e('string', d)}, {r.choice([0, 3, 6])}, '{r.choice(['ab', '', '*'])}')"
                ),
                lambda d: (
                    f"replace({e('string', d)}, '{r.choice(['a', 'b', ' ', ''])}', '{r.choice(['', 'X', 'ab'])}')"
                ),
                lambda d: (
                    f"split_part({e('string', d)}, '{r.choice([',', ' ', 'b', ''])}', {r.choice([1, 2, -1, 3])})"
                ),
                lambda d: f"regexp_extract({e('string', d)}, '{r.choice(_EXTRACTS)}', 1)",
                lambda d: self._regexp_replace(d),
                lambda d: (
                    f"CAST({e(r.choice(['int', 'bigint', 'boolean', 'date', 'timestamp']), d)} AS STRING)"
                ),
                lambda d: f"CASE WHEN {e('boolean', d)} THEN {e('string', d)} ELSE {e('string', d)} END",
                lambda d: f"coalesce({e('string', d)}, {e('string', d)})",
            ],
            d,
        )

    def _regexp_replace(self, d):
        pattern = self.rng.choice([p for p in _REGEXES if not p.endswith("$")])
        replacements = ["", "_", "$0$0"] + (["<$1>"] if "(" in pattern else [])
        return f"regexp_replace({self.expr('string', d)}, '{pattern}', '{self.rng.choice(replacements)}')"

    def _date(self, d):
        e, r = self.expr, self.rng
        return self._pick(
            [
                lambda d: f"to_date({e(r.choice(['timestamp', 'string']), d)})",
                lambda d: (
                    f"{r.choice(['date_add', 'date_sub'])}({e('date', d)}, {r.choice(['1', '-1', '365', 'i1 % 1000'])})"
                ),
                lambda d: (
                    f"{r.choice(['CAST', 'try_cast'])}({e(r.choice(['string', 'timestamp']), d)} AS DATE)"
                ),
                lambda d: f"greatest({e('date', d)}, {e('date', d)})",
            ],
            d,
        )

    def _timestamp(self, d):
        e, r = self.expr, self.rng
        return self._pick(
            [
                lambda d: (
                    f"date_trunc('{r.choice(['YEAR', 'QUARTER', 'MONTH', 'WEEK', 'DAY', 'HOUR', 'MINUTE', 'SECOND'])}', {e('timestamp', d)})"
                ),
                lambda d: (
                    f"{r.choice(['from_utc_timestamp', 'to_utc_timestamp'])}({e('timestamp', d)}, '{r.choice(_ZONES)}')"
                ),
                lambda d: (
                    f"{r.choice(['CAST', 'try_cast'])}({e(r.choice(['string', 'date']), d)} AS TIMESTAMP)"
                ),
                lambda d: f"coalesce({e('timestamp', d)}, {e('timestamp', d)})",
            ],
            d,
        )


# Registered functions the generator leaves out, each with the reason (tests/test_sql_registry.py
# holds every registered function to being generated or listed here).
NOT_GENERATED = {
    "ceiling": "an alias of ceil (one rule)",
    "char_length": "an alias of length (one rule)",
    "character_length": "an alias of length (one rule)",
    "ifnull": "an alias of nvl (one rule)",
    "lcase": "an alias of lower (one rule)",
    "ucase": "an alias of upper (one rule)",
    "power": "an alias of pow (one rule)",
    "regexp": "an alias of rlike (one rule)",
    "regexp_like": "an alias of rlike (one rule)",
    "signum": "an alias of sign (one rule)",
    "mod": "the function form of %, typed into the same node",
    "negative": "the function form of unary -, typed into the same node",
    "to_timestamp": "typed as CAST(x AS TIMESTAMP), which is generated",
}


def grammar_names() -> set[str]:
    """Every word in the generator's SQL text (its string literals), the functions among them."""
    words: set[str] = set(ULP_BUDGET)
    for node in ast.walk(ast.parse(inspect.getsource(Generator))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words.update(w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", node.value))
    return words


# ---- comparing ---------------------------------------------------------------------------------


@dataclass
class Case:
    """One expression under one ANSI mode, with the compiled side's answer."""

    expr: str
    ansi: bool
    spark_type: str = ""
    values: pa.Array | None = None
    error_rows: list[int] = field(default_factory=list)
    error_classes: list[str] = field(default_factory=list)
    java_digits: str = ""  # "double"/"float" printed as text: Java 17's digits may differ from the shortest
    planning_error: bool = False  # a constant part fails: Spark fails the query while planning it


def ulp_distance(a: float, b: float) -> int:
    def ordered(x: float) -> int:
        bits = np.array([x], dtype=np.float64).view(np.int64)[0]
        return int(bits) if bits >= 0 else -(int(bits) & 0x7FFFFFFFFFFFFFFF)

    return abs(ordered(a) - ordered(b))


def root_function(expr: str) -> str | None:
    name = expr.split("(", 1)[0].strip().lower()
    return name if name in ULP_BUDGET else None


def same_value(a, b, spark_type: str, budget: int) -> tuple[bool, int]:
    """(equal, ulps): bit-equal with NaN = NaN, or within ``budget`` ULPs for a transcendental root."""
    if a is None or b is None:
        return a is None and b is None, 0
    if spark_type in ("double", "float"):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b), 0
        if a == b:
            return math.copysign(1, a) == math.copysign(1, b), 0
        if budget and math.isfinite(a) and math.isfinite(b):
            ulps = ulp_distance(a, b)
            return ulps <= budget, ulps
        return False, 0
    return a == b, 0


def compile_case(expr: str, ansi: bool, table: pa.Table) -> Case:
    schema = {name: table.schema.field(name).type for name in table.column_names}
    case = Case(expr, ansi)
    compiled = compile_sql(expr, schema, ansi)
    case.spark_type = compiled.spark_type
    case.planning_error = compiled.planning_error is not None
    sql_types = {n: sql_type_of_arrow(t) for n, t in schema.items()}
    tree = check(expr, {n: t for n, t in sql_types.items() if t}, ansi)  # the root before constant folding
    if tree.op == "cast" and tree.type == "string" and tree.args[0].type in ("double", "float"):
        case.java_digits = tree.args[0].type
    ctx, result = compiled.evaluate_rows({n: table[n] for n in compiled.columns}, table.num_rows)
    if result.err is not None:
        codes = ctx.to_host(result.err)
        case.error_rows = np.flatnonzero(codes).tolist()
        case.error_classes = [ERROR_CLASSES[c] for c in codes[codes != 0]]
    case.values = ctx.to_arrow(result)
    return case


__all__ = [
    "COLUMNS",
    "Case",
    "Generator",
    "NOT_GENERATED",
    "SqlCompileError",
    "ULP_BUDGET",
    "compile_case",
    "grammar_names",
    "same_value",
    "trap_table",
]
