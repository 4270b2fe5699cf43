"""The supported functions: name -> a rule that checks the arguments and types the call.

Each rule mirrors Spark's analyzer for that function (argument coercion, result type), keeps the
compile-time constants a kernel needs in ``params``, and refuses what the kernels cannot reproduce
(a non-literal pattern, a regex construct Java and RE2 read differently, ...).
"""

from __future__ import annotations

import zoneinfo

from common.sql import types as T
from common.sql.checker import FUNCTIONS, Checker, decimal_error, function
from common.sql.errors import SqlCompileError
from common.sql.nodes import Node, lit
from common.sql.regex import translate_pattern, translate_replacement

__all__ = ["FUNCTIONS"]  # the registry (common.sql.checker), filled by this module

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


# ---- numbers ---------------------------------------------------------------------------------


def _double_unary(op: str):
    def rule(c: Checker, args: list, sql: str) -> Node:
        x = c.cast(c.numeric(args[0], sql, op), T.DOUBLE, sql)
        return Node(op, T.DOUBLE, (x,))

    return rule


for _name in ("sqrt", "exp", "expm1", "ln", "log10", "log2", "log1p"):
    function(_name, arity=(1, 1))(_double_unary(_name))


@function("log", arity=(1, 2))
def _log(c, args, sql):
    if len(args) == 1:
        return _double_unary("ln")(c, args, sql)
    base, x = (c.cast(c.numeric(a, sql, "log"), T.DOUBLE, sql) for a in args)
    return Node("log_base", T.DOUBLE, (base, x))


@function("pow", "power", arity=(2, 2))
def _pow(c, args, sql):
    x, y = (c.cast(c.numeric(a, sql, "pow"), T.DOUBLE, sql) for a in args)
    return Node("pow", T.DOUBLE, (x, y))


@function("pmod", arity=(2, 2))
def _pmod(c, args, sql):
    return c.binary_numeric("pmod", args[0], args[1], sql)


@function("mod", arity=(2, 2))
def _mod(c, args, sql):
    return c.binary_numeric("mod", args[0], args[1], sql)


@function("try_divide", arity=(2, 2))
def _try_divide(c, args, sql):
    if all(a.type in T.INTEGRAL + (T.VOID,) for a in args) or any(a.type in T.FRACTIONAL for a in args):
        return c.make_divide(args[0], args[1], sql, try_=True)
    raise decimal_error(sql)


@function("abs", arity=(1, 1))
def _abs(c, args, sql):
    x = c.numeric(args[0], sql, "abs")
    if x.type == T.DECIMAL:
        raise decimal_error(sql)
    x = c.cast(x, T.INT, sql) if x.type == T.VOID else x
    return Node("abs", x.type, (x,), {"ansi": c.ansi})


@function("negative", arity=(1, 1))
def _negative(c, args, sql):
    x = c.numeric(args[0], sql, "negative")
    if x.type == T.DECIMAL:
        raise decimal_error(sql)
    return Node("neg", x.type, (x,), {"ansi": c.ansi})


@function("sign", "signum", arity=(1, 1))
def _sign(c, args, sql):
    return Node("sign", T.DOUBLE, (c.cast(c.numeric(args[0], sql, "sign"), T.DOUBLE, sql),))


def _floor_ceil(op):
    def rule(c, args, sql):
        if len(args) != 1:
            raise SqlCompileError(
                f"`{sql}`: {op} with a scale returns DECIMAL; use round(x, scale) on a double"
            )
        x = c.numeric(args[0], sql, op)
        if x.type == T.DECIMAL:
            raise decimal_error(sql)
        if x.type in T.INTEGRAL or x.type == T.VOID:
            return c.cast(x, T.BIGINT, sql)
        return Node(op, T.BIGINT, (c.cast(x, T.DOUBLE, sql),), {"ansi": c.ansi})

    return rule


function("floor", arity=(1, 2))(_floor_ceil("floor"))
function("ceil", "ceiling", arity=(1, 2))(_floor_ceil("ceil"))


def _round(mode):
    def rule(c, args, sql):
        x = c.numeric(args[0], sql, "round")
        if x.type == T.DECIMAL:
            raise decimal_error(sql)
        scale = c.literal_value(args[1], sql, "round's scale", (T.INT,)) if len(args) > 1 else 0
        if scale is None:
            return lit(None, x.type)
        x = c.cast(x, T.INT, sql) if x.type == T.VOID else x
        return Node("round", x.type, (x,), {"scale": scale, "mode": mode, "ansi": c.ansi})

    return rule


function("round", arity=(1, 2))(_round("half_up"))
function("bround", arity=(1, 2))(_round("half_even"))


def _extremum(op):
    def rule(c, args, sql):
        typ = c.common(args, sql, op)
        if typ == T.VOID:
            return lit(None, T.VOID)
        return Node(op, typ, tuple(c.cast(a, typ, sql) for a in args))

    return rule


function("greatest", arity=(2, None))(_extremum("greatest"))
function("least", arity=(2, None))(_extremum("least"))


@function("isnan", arity=(1, 1))
def _isnan(c, args, sql):
    x = c.numeric(args[0], sql, "isnan")
    x = x if x.type in T.FRACTIONAL else c.cast(x, T.DOUBLE, sql)
    return Node("isnan", T.BOOLEAN, (x,))


@function("nanvl", arity=(2, 2))
def _nanvl(c, args, sql):
    a, b = (c.numeric(x, sql, "nanvl") for x in args)
    typ = T.FLOAT if a.type == b.type == T.FLOAT else T.DOUBLE
    return Node("nanvl", typ, (c.cast(a, typ, sql), c.cast(b, typ, sql)))


# ---- conditionals ----------------------------------------------------------------------------


@function("coalesce", arity=(1, None))
def _coalesce(c, args, sql):
    typ = c.common(args, sql, "coalesce")
    return Node("coalesce", typ, tuple(c.cast(a, typ, sql) for a in args))


@function("nvl", "ifnull", arity=(2, 2))
def _nvl(c, args, sql):
    return _coalesce(c, args, sql)


@function("nullif", arity=(2, 2))
def _nullif(c, args, sql):
    a, b = args
    equal = c.compare("eq", a, b, sql)
    return Node("case", a.type, (equal, lit(None, a.type), a))


@function("if", arity=(3, 3))
def _if(c, args, sql):
    condition = c.boolean(args[0], sql)
    typ = c.common(args[1:], sql, "if")
    return Node("case", typ, (condition, c.cast(args[1], typ, sql), c.cast(args[2], typ, sql)))


# ---- strings ---------------------------------------------------------------------------------


def _string_unary(op, result=T.STRING):
    def rule(c, args, sql):
        arg = c.string_arg(args[0], sql)
        if op in ("lower", "upper") and arg.op in ("lower", "upper"):
            arg = arg.args[0]  # Spark's optimizer: lower(upper(x)) is lower(x), and so on
        return Node(op, result, (arg,))

    return rule


function("lower", "lcase", arity=(1, 1))(_string_unary("lower"))
function("upper", "ucase", arity=(1, 1))(_string_unary("upper"))
function("length", "char_length", "character_length", arity=(1, 1))(_string_unary("length", T.INT))


def _trim_fn(side):
    def rule(c, args, sql):
        return Node("trim", T.STRING, (c.string_arg(args[0], sql),), {"side": side, "chars": " "})

    return rule


function("ltrim", arity=(1, 1))(_trim_fn("ltrim"))
function("rtrim", arity=(1, 1))(_trim_fn("rtrim"))
function("trim", arity=(1, 1))(_trim_fn("trim"))


@function("substring", "substr", arity=(2, 3))
def _substring(c, args, sql):
    pos = c.literal_value(args[1], sql, "substring's position", T.INTEGRAL)
    length = c.literal_value(args[2], sql, "substring's length", T.INTEGRAL) if len(args) > 2 else 2**31 - 1
    if pos is None or length is None:
        return lit(None, T.STRING)
    return Node("substring", T.STRING, (c.string_arg(args[0], sql),), {"pos": pos, "length": length})


@function("concat", arity=(1, None))
def _concat(c, args, sql):
    return Node("concat", T.STRING, tuple(c.string_arg(a, sql) for a in args))


@function("concat_ws", arity=(1, None))
def _concat_ws(c, args, sql):
    sep = c.literal_value(args[0], sql, "concat_ws's separator", (T.STRING,))
    if sep is None:
        return lit(None, T.STRING)
    return Node("concat_ws", T.STRING, tuple(c.string_arg(a, sql) for a in args[1:]), {"sep": sep})


def _pad(side):
    def rule(c, args, sql):
        length = c.literal_value(args[1], sql, f"{side}'s length", T.INTEGRAL)
        pad = c.literal_value(args[2], sql, f"{side}'s padding", (T.STRING,)) if len(args) > 2 else " "
        if length is None or pad is None:
            return lit(None, T.STRING)
        if length > 100_000:
            raise SqlCompileError(f"`{sql}`: {side} to more than 100000 characters is not supported")
        return Node(
            "pad", T.STRING, (c.string_arg(args[0], sql),), {"side": side, "length": length, "pad": pad}
        )

    return rule


function("lpad", arity=(2, 3))(_pad("lpad"))
function("rpad", arity=(2, 3))(_pad("rpad"))


@function("replace", arity=(2, 3))
def _replace(c, args, sql):
    search = c.literal_value(args[1], sql, "replace's search string", (T.STRING,))
    replacement = c.literal_value(args[2], sql, "replace's replacement", (T.STRING,)) if len(args) > 2 else ""
    if search is None or replacement is None:
        return lit(None, T.STRING)
    return Node(
        "replace", T.STRING, (c.string_arg(args[0], sql),), {"search": search, "replacement": replacement}
    )


def _match(op):
    def rule(c, args, sql):
        pattern = c.literal_value(args[1], sql, f"{op}'s pattern", (T.STRING,))
        if pattern is None:
            return lit(None, T.BOOLEAN)
        return Node(op, T.BOOLEAN, (c.string_arg(args[0], sql),), {"pattern": pattern})

    return rule


function("startswith", arity=(2, 2))(_match("startswith"))
function("endswith", arity=(2, 2))(_match("endswith"))
function("contains", arity=(2, 2))(_match("contains"))


@function("instr", arity=(2, 2))
def _instr(c, args, sql):
    sub = c.literal_value(args[1], sql, "instr's substring", (T.STRING,))
    if sub is None:
        return lit(None, T.INT)
    return Node("instr", T.INT, (c.string_arg(args[0], sql),), {"sub": sub})


@function("split_part", arity=(3, 3))
def _split_part(c, args, sql):
    delim = c.literal_value(args[1], sql, "split_part's delimiter", (T.STRING,))
    index = c.literal_value(args[2], sql, "split_part's part number", T.INTEGRAL)
    if delim is None or index is None:
        return lit(None, T.STRING)
    if index == 0:
        raise SqlCompileError(
            f"`{sql}`: split_part's part number must not be 0 (Spark fails every row: INVALID_INDEX_OF_ZERO)"
        )
    return Node("split_part", T.STRING, (c.string_arg(args[0], sql),), {"delim": delim, "index": index})


@function("rlike", "regexp", "regexp_like", arity=(2, 2))
def _rlike(c, args, sql):
    pattern = c.literal_value(args[1], sql, "the regex", (T.STRING,))
    if pattern is None:
        return lit(None, T.BOOLEAN)
    return Node(
        "rlike",
        T.BOOLEAN,
        (c.string_arg(args[0], sql),),
        {"pattern": translate_pattern(pattern, sql, "rlike")},
    )


@function("regexp_extract", arity=(2, 3))
def _regexp_extract(c, args, sql):
    pattern = c.literal_value(args[1], sql, "the regex", (T.STRING,))
    group = c.literal_value(args[2], sql, "regexp_extract's group", T.INTEGRAL) if len(args) > 2 else 1
    if pattern is None or group is None:
        return lit(None, T.STRING)
    translated = translate_pattern(pattern, sql, "regexp_extract", group=group)
    return Node(
        "regexp_extract", T.STRING, (c.string_arg(args[0], sql),), {"pattern": translated, "group": group}
    )


@function("regexp_replace", arity=(3, 3))
def _regexp_replace(c, args, sql):
    pattern = c.literal_value(args[1], sql, "the regex", (T.STRING,))
    replacement = c.literal_value(args[2], sql, "the replacement", (T.STRING,))
    if pattern is None or replacement is None:
        return lit(None, T.STRING)
    translated = translate_pattern(pattern, sql, "regexp_replace")
    params = {
        "pattern": translated,
        "replacement": translate_replacement(replacement, sql, translated.groups),
    }
    return Node("regexp_replace", T.STRING, (c.string_arg(args[0], sql),), params)


# ---- hashes ----------------------------------------------------------------------------------


def _hash(op, result):
    def rule(c, args, sql):
        for a in args:
            if a.type == T.DECIMAL:
                raise decimal_error(sql)
        return Node(op, result, tuple(a if a.type != T.VOID else lit(None, T.INT) for a in args))

    return rule


function("hash", arity=(1, None))(_hash("hash", T.INT))
function("xxhash64", arity=(1, None))(_hash("xxhash64", T.BIGINT))


@function("crc32", arity=(1, 1))
def _crc32(c, args, sql):
    return Node("crc32", T.BIGINT, (c.string_arg(args[0], sql),))


# ---- dates and times -------------------------------------------------------------------------


def _as_date(c: Checker, node: Node, sql: str) -> Node:
    if node.type not in (T.DATE, T.TIMESTAMP, T.STRING, T.VOID):
        raise SqlCompileError(f"`{sql}`: needs a date, timestamp or string, got {node.type}")
    return c.cast(node, T.DATE, sql)


def _as_timestamp(c: Checker, node: Node, sql: str) -> Node:
    if node.type not in (T.DATE, T.TIMESTAMP, T.STRING, T.VOID):
        raise SqlCompileError(f"`{sql}`: needs a timestamp, date or string, got {node.type}")
    return c.cast(node, T.TIMESTAMP, sql)


def _date_part(op):
    def rule(c, args, sql):
        return Node("date_part", T.INT, (_as_date(c, args[0], sql),), {"part": op})

    return rule


for _names, _part in (
    (("year",), "year"),
    (("month",), "month"),
    (("dayofmonth", "day"), "day"),
    (("dayofweek",), "dayofweek"),
    (("dayofyear",), "dayofyear"),
    (("weekofyear",), "weekofyear"),
    (("quarter",), "quarter"),
):
    function(*_names, arity=(1, 1))(_date_part(_part))


def _time_part(op):
    def rule(c, args, sql):
        return Node("time_part", T.INT, (_as_timestamp(c, args[0], sql),), {"part": op})

    return rule


for _part in ("hour", "minute", "second"):
    function(_part, arity=(1, 1))(_time_part(_part))


@function("to_date", arity=(1, 1))
def _to_date(c, args, sql):
    return _as_date(c, args[0], sql)


@function("to_timestamp", arity=(1, 1))
def _to_timestamp(c, args, sql):
    return _as_timestamp(c, args[0], sql)


def _date_shift(sign):
    def rule(c, args, sql):
        days = args[1]
        if days.type not in (T.INT, T.VOID):
            raise SqlCompileError(f"`{sql}`: the number of days must be an int, got {days.type}")
        return Node("date_add", T.DATE, (_as_date(c, args[0], sql), c.cast(days, T.INT, sql)), {"sign": sign})

    return rule


function("date_add", arity=(2, 2))(_date_shift(1))
function("date_sub", arity=(2, 2))(_date_shift(-1))


@function("datediff", arity=(2, 2))
def _datediff(c, args, sql):
    return Node("datediff", T.INT, tuple(_as_date(c, a, sql) for a in args))


@function("date_trunc", arity=(2, 2))
def _date_trunc(c, args, sql):
    unit = c.literal_value(args[0], sql, "date_trunc's unit", (T.STRING,))
    if unit is None:
        return lit(None, T.TIMESTAMP)
    if unit.upper() not in _DATE_TRUNC_UNITS:
        raise SqlCompileError(
            f"`{sql}`: unknown date_trunc unit {unit!r}; valid: {', '.join(_DATE_TRUNC_UNITS)}"
        )
    return Node(
        "date_trunc",
        T.TIMESTAMP,
        (_as_timestamp(c, args[1], sql),),
        {"unit": _DATE_TRUNC_UNITS[unit.upper()]},
    )


@function("unix_timestamp", arity=(1, 1))
def _unix_timestamp(c, args, sql):
    if args[0].type not in (T.TIMESTAMP, T.DATE):
        raise SqlCompileError(
            f"`{sql}`: unix_timestamp takes a timestamp or date here; CAST a string to timestamp first"
        )
    return Node("unix_timestamp", T.BIGINT, (c.cast(args[0], T.TIMESTAMP, sql),))


def _zone_shift(op):
    def rule(c, args, sql):
        zone = c.literal_value(args[1], sql, f"{op}'s time zone", (T.STRING,))
        if zone is None:
            return lit(None, T.TIMESTAMP)
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SqlCompileError(
                f'`{sql}`: unknown time zone "{zone}"; use an IANA name such as "Europe/Berlin"'
            ) from None
        return Node(op, T.TIMESTAMP, (_as_timestamp(c, args[0], sql),), {"zone": zone})

    return rule


function("from_utc_timestamp", arity=(2, 2))(_zone_shift("from_utc_timestamp"))
function("to_utc_timestamp", arity=(2, 2))(_zone_shift("to_utc_timestamp"))
