"""CAST between the supported types, with Spark's three behaviours for a value that does not fit:
``legacy`` (ANSI off: wrap, saturate or null, as Spark 3), ``ansi`` (CAST_OVERFLOW or
CAST_INVALID_INPUT) and ``try`` (try_cast: null).

Numeric casts run in torch; parsing and formatting strings run in pyarrow.compute and NumPy's
vectorised string functions on the host. Doubles print as Java's ``Double.toString`` does
(``1.0E10``, ``1.0E-4``, ``100.0``) from Arrow's shortest round-trip digits.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from common.sql import types as T
from common.sql.java_zones import TRIMMED, Zone, java_zone
from common.sql.kernels_numeric import _to_long
from common.sql.kernels_time import civil_to_days, format_date, format_timestamp, wall_offsets
from common.sql.vec import Ctx, Vec, kernel

_MICROS_PER_DAY = 86_400_000_000


def _fail(ctx: Ctx, vec: Vec, bad: torch.Tensor, mode: str, error_class: str) -> Vec:
    """Applies a cast's failure rows: an error under ANSI, null otherwise (``vec`` is modified)."""
    if mode == "ansi":
        vec.err = ctx.raise_where(vec.err, bad & ctx.ok(vec) if vec.type != T.STRING else bad, error_class)
    else:
        vec.valid = ~bad if vec.valid is None else vec.valid & ~bad
    return vec


@kernel("cast", null_intolerant=True)
def cast(ctx: Ctx, node, args):
    (a,) = args
    src, dst, mode = a.type, node.type, node.params["mode"]
    if src == T.STRING:
        return _from_string(ctx, a, dst, mode)
    if dst == T.STRING:
        return _to_string(ctx, a)
    x = a.data
    if dst == T.BOOLEAN:
        return Vec(T.BOOLEAN, x != 0, a.valid, a.err)
    if src == T.BOOLEAN:
        return Vec(dst, x.to(getattr(torch, T.TORCH_DTYPES[dst])), a.valid, a.err)
    if src == T.DATE and dst == T.TIMESTAMP:
        return Vec(dst, x.to(torch.int64) * _MICROS_PER_DAY, a.valid, a.err)
    if src == T.TIMESTAMP and dst == T.DATE:
        return Vec(dst, torch.div(x, _MICROS_PER_DAY, rounding_mode="floor").to(torch.int32), a.valid, a.err)
    if dst in T.FRACTIONAL:
        return Vec(dst, x.to(getattr(torch, T.TORCH_DTYPES[dst])), a.valid, a.err)
    # to int or bigint
    low, high = T.INT_RANGE[dst]
    if src in T.INTEGRAL:
        out = Vec(
            dst, x.to(getattr(torch, T.TORCH_DTYPES[dst])), a.valid, a.err
        )  # wraps, as Java's (int) long
        if src == T.BIGINT and dst == T.INT and mode != "legacy":
            out = _fail(ctx, out, (x < low) | (x > high), mode, "CAST_OVERFLOW")
        return out
    f = x.to(torch.float64)
    if mode == "legacy":  # Java's (int) / (long): NaN -> 0, saturating
        if dst == T.BIGINT:
            return Vec(dst, _to_long(ctx, f), a.valid, a.err)
        clipped = torch.where(torch.isnan(f), torch.zeros_like(f), f).clamp(float(low), float(high))
        return Vec(dst, clipped.to(torch.int32), a.valid, a.err)
    fits = (torch.floor(f) <= float(high)) & (torch.ceil(f) >= float(low))  # Spark's check; NaN fails
    safe = torch.where(fits, f, torch.zeros_like(f))
    out = Vec(dst, _to_long(ctx, safe).to(getattr(torch, T.TORCH_DTYPES[dst])), a.valid, a.err)
    return _fail(ctx, out, ~fits, mode, "CAST_OVERFLOW")


# ---- to string ---------------------------------------------------------------------------------


def _to_string(ctx: Ctx, a: Vec) -> Vec:
    valid = None if a.valid is None else ctx.to_host(a.valid)
    if a.type in T.FRACTIONAL:
        text = java_float_text(ctx.to_host(a.data))
    elif a.type == T.BOOLEAN:
        text = pc.if_else(pa.array(ctx.to_host(a.data)), "true", "false")
    elif a.type == T.DATE:
        text = format_date(ctx.to_host(a.data))
    elif a.type == T.TIMESTAMP:
        text = format_timestamp(ctx.to_host(a.data))
    else:
        text = pc.cast(pa.array(ctx.to_host(a.data)), pa.string())
    text = text.cast(pa.string())
    if valid is not None:
        text = pc.if_else(pa.array(valid), text, pa.scalar(None, pa.string()))
    return Vec(T.STRING, text, None, a.err)


def java_float_text(values: np.ndarray) -> pa.Array:
    """Java's ``Double.toString`` / ``Float.toString`` layout of Arrow's shortest digits.

    Java prints 1e-3 <= |x| < 1e7 as plain decimals with at least one fractional digit and other
    values as ``d.dddE<exp>``. (Java 17's FloatingDecimal sometimes prints a digit more than the
    shortest, e.g. 2.82879384806159008E17; such values differ here and are documented.)
    """
    shortest = pc.cast(pa.array(values), pa.string())
    parts = pc.extract_regex(
        shortest, r"^(?P<sign>-?)(?P<int>\d+)(?:\.(?P<frac>\d+))?(?:e(?P<exp>[+-]?\d+))?$"
    )
    field = {
        name: pc.fill_null(pc.struct_field(parts, name), "0" if name in ("int", "exp") else "")
        for name in ("sign", "int", "frac", "exp")
    }
    sign = np.asarray(field["sign"].to_numpy(zero_copy_only=False), dtype=np.dtypes.StringDType())
    whole, frac, exp_text = field["int"], field["frac"], field["exp"]
    exp_text = pc.utf8_ltrim(exp_text, "+")
    exponent = pc.cast(pc.if_else(pc.equal(exp_text, ""), "0", exp_text), pa.int64()).to_numpy(
        zero_copy_only=False
    )
    digits_all = pc.binary_join_element_wise(whole, frac, "")
    stripped = pc.utf8_ltrim(digits_all, "0")
    leading = (_np(pc.utf8_length(digits_all)) - _np(pc.utf8_length(stripped))).astype(np.int64)
    digits = pc.utf8_rtrim(stripped, "0")
    zero = pc.equal(digits, "").to_numpy(zero_copy_only=False)
    digits = np.asarray(
        pc.if_else(pc.equal(digits, ""), "0", digits).to_numpy(zero_copy_only=False),
        dtype=np.dtypes.StringDType(),
    )
    point = exponent + _np(pc.utf8_length(whole)).astype(np.int64) - 1 - leading  # decimal exponent
    point = np.where(zero, 0, point)
    n = np.strings.str_len(digits)
    S = np.strings
    head, tail = S.slice(digits, 0, 1), S.slice(digits, 1, None)
    sci = S.add(S.add(S.add(head, "."), np.where(n > 1, tail, "0")), S.add("E", point.astype(str)))
    int_len = np.maximum(point + 1, 1)
    int_part = S.ljust(S.slice(digits, 0, int_len), int_len, "0")
    frac_part = S.slice(digits, int_len, None)
    plain_pos = S.add(S.add(int_part, "."), np.where(S.str_len(frac_part) > 0, frac_part, "0"))
    zeros = S.multiply(np.asarray("0", dtype=np.dtypes.StringDType()), np.maximum(-point - 1, 0))
    plain_neg = S.add(S.add("0.", zeros), digits)
    plain = np.where(point >= 0, plain_pos, plain_neg)
    text = np.where((point >= -3) & (point < 7) | zero, plain, sci)
    text = S.add(sign, text)
    special = pc.is_in(shortest, pa.array(["nan", "inf", "-inf"])).to_numpy(zero_copy_only=False)
    out = pa.array(np.where(special, "", text).astype(object), type=pa.string())
    names = pc.replace_substring(pc.replace_substring(shortest, "nan", "NaN"), "inf", "Infinity")
    return pc.if_else(pa.array(special), names, out)


def _np(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


# ---- from string -------------------------------------------------------------------------------


def _from_string(ctx: Ctx, a: Vec, dst: str, mode: str) -> Vec:
    if dst == T.STRING:
        return a
    text = pc.utf8_trim(a.data.cast(pa.string()), TRIMMED)
    if dst in T.INTEGRAL:
        return _parse_integral(ctx, a, text, dst, mode)
    if dst in T.FRACTIONAL:
        return _parse_fractional(ctx, a, text, dst, mode)
    if dst == T.BOOLEAN:
        lowered = pc.utf8_lower(text)
        true = pc.is_in(lowered, pa.array(["t", "true", "y", "yes", "1"]))
        false = pc.is_in(lowered, pa.array(["f", "false", "n", "no", "0"]))
        return _parsed(
            ctx, a, ctx.from_host(true.to_numpy(zero_copy_only=False)), pc.or_(true, false), T.BOOLEAN, mode
        )
    if dst == T.DATE:
        days, good = parse_date(text)
        return _parsed(ctx, a, ctx.from_host(days), good, T.DATE, mode)
    micros, good = parse_timestamp(text)
    return _parsed(ctx, a, ctx.from_host(micros), good, T.TIMESTAMP, mode)


def _parsed(ctx: Ctx, a: Vec, values: torch.Tensor, good: pa.Array, dst: str, mode: str) -> Vec:
    valid_in = ctx.valid(a)
    good_t = ctx.from_host(pc.fill_null(good, False).to_numpy(zero_copy_only=False))
    out = Vec(dst, values, valid_in, a.err)
    bad = valid_in & ~good_t
    if mode == "ansi":
        out.err = ctx.raise_where(a.err, bad, "CAST_INVALID_INPUT")
    else:
        out.valid = valid_in & good_t
    return out


def _parse_integral(ctx: Ctx, a: Vec, text: pa.Array, dst: str, mode: str) -> Vec:
    # ANSI and try_cast take [+-]digits; Spark 3 also takes a fraction and truncates it ('1.5' -> 1)
    grammar = r"^[+-]?\d+$" if mode != "legacy" else r"^[+-]?(\d+\.?\d*|\.\d*)$"
    good = pc.fill_null(pc.match_substring_regex(text, grammar), False)
    whole = pc.replace_substring_regex(text, r"\..*$", "")
    whole = pc.replace_substring_regex(whole, r"^([+-]?)$", r"\10")  # "" or a lone sign: 0
    negative = pc.starts_with(whole, "-")
    digits = pc.utf8_ltrim(pc.utf8_ltrim(whole, "+-"), "0")
    length = pc.utf8_length(digits)
    limit = "2147483648" if dst == T.INT else "9223372036854775808"
    lengths_ok = pc.less(length, len(limit))
    at_limit = pc.equal(length, len(limit))
    below = pc.less(digits, limit)
    equal_neg = pc.and_(pc.equal(digits, limit), negative)
    fits = pc.or_(lengths_ok, pc.and_(at_limit, pc.or_(below, equal_neg)))
    good = pc.and_(good, pc.fill_null(fits, False))
    safe = pc.if_else(good, pc.binary_join_element_wise(pc.if_else(negative, "-", ""), digits, ""), "0")
    safe = pc.if_else(pc.equal(safe, "-"), "0", pc.if_else(pc.equal(safe, ""), "0", safe))
    values = pc.cast(pc.fill_null(safe, "0"), pa.int64()).to_numpy(zero_copy_only=False)
    values = values.astype(np.int32 if dst == T.INT else np.int64)
    return _parsed(ctx, a, ctx.from_host(values), good, dst, mode)


_SPECIAL_FLOATS = {
    "inf": "inf",
    "+inf": "inf",
    "infinity": "inf",
    "+infinity": "inf",
    "-inf": "-inf",
    "-infinity": "-inf",
    "nan": "nan",  # Spark's own names, any case; "+nan" and "-nan" are not among them
}


_HEX_FLOAT = r"^[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+[fFdD]?$"


def _parse_fractional(ctx: Ctx, a: Vec, text: pa.Array, dst: str, mode: str) -> Vec:
    # Java's Double.parseDouble grammar (decimal forms; an f/d suffix allowed), then Spark's names
    decimal = pc.fill_null(
        pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?$"), False
    )
    java_names = pc.is_in(text, pa.array(["NaN", "+NaN", "-NaN", "Infinity", "+Infinity", "-Infinity"]))
    lowered = pc.utf8_lower(text)
    special = pc.or_(pc.is_in(lowered, pa.array(list(_SPECIAL_FLOATS))), pc.fill_null(java_names, False))
    number = pc.replace_substring_regex(text, r"[fFdD]$", "")
    named = pc.replace_substring_regex(lowered, r"^\+", "")
    named = pc.replace_substring_regex(named, r"^-nan$", "nan")
    named = pc.replace_substring_regex(named, r"infinity", "inf")
    source = pc.if_else(decimal, number, pc.if_else(special, named, "0"))
    arrow = pa.float32() if dst == T.FLOAT else pa.float64()
    values = pc.cast(pc.fill_null(source, "0"), arrow).to_numpy(zero_copy_only=False).copy()
    good = pc.or_(decimal, pc.fill_null(special, False))
    hexadecimal = pc.fill_null(pc.match_substring_regex(text, _HEX_FLOAT), False)
    rows = np.flatnonzero(hexadecimal.to_numpy(zero_copy_only=False))
    if rows.size:  # Java's hexadecimal floats (0x1p3): rare, so Python's float.fromhex on those rows
        texts = pc.replace_substring_regex(text.take(pa.array(rows)), r"[fFdD]$", "").to_pylist()
        values[rows] = np.array([float.fromhex(t) for t in texts], dtype=values.dtype)
        good = pc.or_(good, hexadecimal)
    return _parsed(ctx, a, ctx.from_host(values), good, dst, mode)


_DATE = r"^([+-]?)(\d{4,7})(?:-(\d{1,2})(?:-(\d{1,2})(?:[ T].*)?)?)?$"
# Spark's parseTimestampString: an hour alone is a time; a zone only follows the seconds (or
# their fraction, of any length), and is whatever text remains (common.sql.java_zones).
_TIMESTAMP = (
    r"^([+-]?)(\d{4,6})(?:-(\d{1,2})(?:-(\d{1,2})(?:[ T](\d{1,2})(?::(\d{1,2})"
    r"(?::(\d{1,2})(?:\.(\d*))?(\D.*)?)?)?)?)?)?$"
)
_TIMESTAMP_FIELDS = ["sign", "year", "month", "day", "hour", "minute", "second", "fraction", "zone"]


def _field(parts, name: str, default: int) -> np.ndarray:
    column = pc.struct_field(parts, name)
    column = pc.if_else(pc.equal(column, ""), str(default), column)
    return pc.cast(pc.fill_null(column, str(default)), pa.int64()).to_numpy(zero_copy_only=False)


def parse_date(text: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Spark's string -> date: ``yyyy[-m[m][-d[d][ |T...]]]``; (int32 days, matched-and-valid)."""
    parts = pc.extract_regex(text, _named(_DATE, ["sign", "year", "month", "day"]))
    return _civil(parts, with_time=False)


# A time without a date: ``T`` and an hour, or an hour and ``:`` (no sign), as Spark's parser.
_TIME_ONLY = r"^(T\d|\d{1,2}:)"


def parse_timestamp(text: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Spark's string -> timestamp (UTC session): ``[+-]yyyy[-m[m][-d[d][ |T]h[h][:m[m][:s[s]
    [.fraction][zone]]]]]``, or the same time part alone; (micros, matched-and-valid).

    A time alone (``12:34``) is today's date at that time, as in Spark, today in the zone it names
    (or UTC): such a value depends on the day the job runs, on both sides alike.
    """
    time_only = pc.fill_null(pc.match_substring_regex(text, _TIME_ONLY), False)
    dated = pc.any(time_only).as_py()
    if dated:  # the epoch's date for now; today's (in the row's zone) replaces it below
        text = pc.if_else(
            time_only,
            pc.binary_join_element_wise("1970-01-01", pc.replace_substring_regex(text, "^T", ""), " "),
            text,
        )
    parts = pc.extract_regex(text, _named(_TIMESTAMP, _TIMESTAMP_FIELDS))
    wall, good = _civil(parts, with_time=True)
    # Each distinct zone text is resolved once (a column may hold many, e.g. free text after the
    # time); rows then gather their zone's offset, and a region's rows are converted together.
    zones = pc.fill_null(pc.struct_field(parts, "zone"), "")
    names = pc.unique(zones)
    which = pc.index_in(zones, names).to_numpy(zero_copy_only=False)
    resolved = [java_zone(name) if name else Zone(0) for name in names.to_pylist()]
    zone_good = np.array([z is not None for z in resolved], dtype=bool)[which]
    offset = np.array([z.offset if z is not None else 0 for z in resolved], dtype=np.int64)[which]
    seconds = np.floor_divide(wall, 1_000_000)
    if dated:  # today in the row's zone, for a time alone
        now = dt.datetime.now(dt.UTC)
        today = np.array([_today(z, now) for z in resolved], dtype=np.int64)
        days = np.where(time_only.to_numpy(zero_copy_only=False), today[which], 0)
        seconds = seconds + days * 86400
        wall = wall + days * 86400 * 1_000_000
    regions = {region: k for k, region in enumerate(sorted({z.region for z in resolved if z and z.region}))}
    if regions:
        row_region = np.array([regions.get(z.region, -1) if z else -1 for z in resolved])[which]
        for region, k in regions.items():
            rows = row_region == k
            offset[rows] = wall_offsets(seconds[rows], region)
    ok = pc.and_(good, pa.array(zone_good))
    return (wall - offset * 1_000_000).astype(np.int64), ok


def _today(zone: Zone | None, now: dt.datetime) -> int:
    """Days since 1970-01-01 of today's date in ``zone`` (Spark's LocalDate.now(zone))."""
    if zone is None:
        return 0
    local = (
        now.astimezone(zoneinfo.ZoneInfo(zone.region))
        if zone.region
        else now + dt.timedelta(seconds=zone.offset)
    )
    return (local.date() - dt.date(1970, 1, 1)).days


def _named(pattern: str, names: list[str]) -> str:
    out, it = [], iter(names)
    i = 0
    while i < len(pattern):
        if pattern[i] == "(" and not pattern.startswith("(?", i) and (i == 0 or pattern[i - 1] != "\\"):
            out.append(f"(?P<{next(it)}>")
        else:
            out.append(pattern[i])
        i += 1
    return "".join(out)


def _civil(parts, with_time: bool) -> tuple[np.ndarray, pa.Array]:
    matched = pc.is_valid(parts)
    sign = pc.struct_field(parts, "sign").to_numpy(zero_copy_only=False)
    year = _field(parts, "year", 1970)
    year = np.where(sign == "-", -year, year)
    month, day = _field(parts, "month", 1), _field(parts, "day", 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month - 1, 0, 11)] + (
        leap & (month == 2)
    )
    good = (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    days = civil_to_days(year, np.clip(month, 1, 12), np.clip(day, 1, 31))
    if not with_time:
        good &= (days >= -(2**31)) & (days < 2**31)  # Spark: the day number must fit an int
        ok = pc.and_(pc.fill_null(matched, False), pa.array(good))
        return days.astype(np.int32), ok
    hour, minute, second = _field(parts, "hour", 0), _field(parts, "minute", 0), _field(parts, "second", 0)
    fraction = pc.utf8_slice_codeunits(pc.fill_null(pc.struct_field(parts, "fraction"), ""), 0, 6)
    fraction = pc.utf8_rpad(fraction, 6, "0")
    micros_frac = pc.cast(fraction, pa.int64()).to_numpy(zero_copy_only=False)
    good &= (hour <= 23) & (minute <= 59) & (second <= 59)
    good &= (year >= -290308) & (year <= 294247)  # microseconds since 1970 fit a long
    seconds = days * 86400 + hour * 3600 + minute * 60 + second  # the wall time; zones come after
    ok = pc.and_(pc.fill_null(matched, False), pa.array(good))
    return (seconds * 1_000_000 + micros_frac).astype(np.int64), ok
