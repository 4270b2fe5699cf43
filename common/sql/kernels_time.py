"""Date and time kernels: calendar arithmetic on int32 days and int64 microseconds in torch.

The session time zone is UTC (the executors fix it), so a timestamp's fields are plain integer
arithmetic; the civil-calendar conversions are Howard Hinnant's ``days_from_civil`` and
``civil_from_days``, exact for every proleptic Gregorian date, as Spark's java.time. Time-zone
shifts take their offsets from ``common.sql.timezones`` (Java's rules, DST included) on the host.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from common.sql import types as T
from common.sql.timezones import utc_offsets
from common.sql.vec import Ctx, Vec, and_masks, kernel

_MICROS = 1_000_000
_MICROS_PER_DAY = 86_400 * _MICROS


def civil_to_days(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (NumPy or torch integers)."""
    early = month <= 2
    y = year - (early.to(year.dtype) if hasattr(early, "to") else early.astype(year.dtype))
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def days_to_civil(days):
    """(year, month, day) of int days since 1970-01-01 (NumPy or torch integers, floor division)."""
    z = days.astype(np.int64) if isinstance(days, np.ndarray) else days.to(torch.int64)
    z = z + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 - 12 * (mp >= 10)
    return y + 1 * (m <= 2), m, d


@kernel("date_part", null_intolerant=True)
def date_part(ctx: Ctx, node, args):
    (a,) = args
    days = a.data.to(torch.int64)
    part = node.params["part"]
    year, month, day = days_to_civil(days)
    if part == "year":
        out = year
    elif part == "month":
        out = month
    elif part == "day":
        out = day
    elif part == "quarter":
        out = (month - 1) // 3 + 1
    elif part == "dayofweek":  # 1 = Sunday; 1970-01-01 was a Thursday
        out = torch.remainder(days + 4, 7) + 1
    elif part == "dayofyear":
        out = days - civil_to_days(year, torch.ones_like(year), torch.ones_like(year)) + 1
    else:  # ISO week: the week of this week's Thursday, counted from that year's first Thursday
        weekday = torch.remainder(days + 3, 7)  # Monday = 0
        thursday = days - weekday + 3
        thursday_year, _, _ = days_to_civil(thursday)
        jan1 = civil_to_days(thursday_year, torch.ones_like(year), torch.ones_like(year))
        out = torch.div(thursday - jan1, 7, rounding_mode="floor") + 1
    return Vec(T.INT, out.to(torch.int32), a.valid, a.err)


@kernel("time_part", null_intolerant=True)
def time_part(ctx: Ctx, node, args):
    (a,) = args
    seconds = torch.div(a.data, _MICROS, rounding_mode="floor")
    part = node.params["part"]
    if part == "hour":
        out = torch.remainder(torch.div(seconds, 3600, rounding_mode="floor"), 24)
    elif part == "minute":
        out = torch.remainder(torch.div(seconds, 60, rounding_mode="floor"), 60)
    else:
        out = torch.remainder(seconds, 60)
    return Vec(T.INT, out.to(torch.int32), a.valid, a.err)


@kernel("date_add", null_intolerant=True)
def date_add(ctx: Ctx, node, args):
    d, n = args
    shifted = d.data + n.data * node.params["sign"]  # int32 arithmetic wraps, as Spark's
    return Vec(T.DATE, shifted.to(torch.int32), and_masks(d.valid, n.valid), ctx.strict_err(args))


@kernel("datediff", null_intolerant=True)
def datediff(ctx: Ctx, node, args):
    end, start = args
    return Vec(
        T.INT,
        (end.data - start.data).to(torch.int32),
        and_masks(end.valid, start.valid),
        ctx.strict_err(args),
    )


@kernel("date_trunc", null_intolerant=True)
def date_trunc(ctx: Ctx, node, args):
    (a,) = args
    micros = a.data
    unit = node.params["unit"]
    fixed = {
        "microsecond": 1,
        "millisecond": 1000,
        "second": _MICROS,
        "minute": 60 * _MICROS,
        "hour": 3600 * _MICROS,
        "day": _MICROS_PER_DAY,
    }
    if unit in fixed:
        step = fixed[unit]
        out = torch.div(micros, step, rounding_mode="floor") * step
    else:
        days = torch.div(micros, _MICROS_PER_DAY, rounding_mode="floor")
        if unit == "week":  # back to Monday
            start = days - torch.remainder(days + 3, 7)
        else:
            year, month, _ = days_to_civil(days)
            if unit == "year":
                month = torch.ones_like(month)
            elif unit == "quarter":
                month = (month - 1) // 3 * 3 + 1
            start = civil_to_days(year, month, torch.ones_like(month))
        out = start * _MICROS_PER_DAY
    return Vec(T.TIMESTAMP, out, a.valid, a.err)


@kernel("unix_timestamp", null_intolerant=True)
def unix_timestamp(ctx: Ctx, node, args):
    (a,) = args
    return Vec(T.BIGINT, torch.div(a.data, _MICROS, rounding_mode="trunc"), a.valid, a.err)  # Spark truncates


_CYCLE = 146097 * 86400  # the Gregorian calendar (and so every annual DST rule) repeats every 400 years
_FIRST, _LAST = -62135596800 + 2 * _CYCLE // 400, 253402300799 - 2 * _CYCLE // 400


def zone_offsets(seconds: np.ndarray, zone: str) -> np.ndarray:
    """UTC offsets as Java computes them, also for instants outside the years 1..9999, which are
    moved by whole 400-year cycles into range (the zone's rules there are the same)."""
    seconds = np.asarray(seconds, dtype=np.int64)
    low = seconds < _FIRST
    high = seconds > _LAST
    seconds = np.where(low, seconds + (-(-(_FIRST - seconds) // _CYCLE)) * _CYCLE, seconds)
    seconds = np.where(high, seconds - (-(-(seconds - _LAST) // _CYCLE)) * _CYCLE, seconds)
    return utc_offsets(seconds, zone)


def _offsets(ctx: Ctx, seconds: torch.Tensor, valid: torch.Tensor, zone: str) -> np.ndarray:
    host = ctx.to_host(seconds)
    return zone_offsets(np.where(ctx.to_host(valid), host, 0), zone)


@kernel("from_utc_timestamp", null_intolerant=True)
def from_utc_timestamp(ctx: Ctx, node, args):
    (a,) = args
    seconds = torch.div(a.data, _MICROS, rounding_mode="floor")
    offset = ctx.from_host(_offsets(ctx, seconds, ctx.valid(a), node.params["zone"]))
    return Vec(T.TIMESTAMP, a.data + offset * _MICROS, a.valid, a.err)


@kernel("to_utc_timestamp", null_intolerant=True)
def to_utc_timestamp(ctx: Ctx, node, args):
    """Reads the timestamp as wall time in the zone, as java.time's ZonedDateTime.ofLocal: in an
    overlap the earlier offset, in a gap the offset before it (the wall time moves forward)."""
    (a,) = args
    zone, valid = node.params["zone"], ctx.valid(a)
    wall = ctx.to_host(torch.div(a.data, _MICROS, rounding_mode="floor"))
    offset = wall_offsets(np.where(ctx.to_host(valid), wall, 0), zone)
    return Vec(T.TIMESTAMP, a.data - ctx.from_host(offset) * _MICROS, a.valid, a.err)


def wall_offsets(wall: np.ndarray, zone: str) -> np.ndarray:
    """The offsets (seconds) that turn wall times in ``zone`` (seconds, read as if UTC) into
    instants, as java.time's ZonedDateTime.ofLocal does: in an overlap the earlier offset, in a
    gap the offset before it (so the wall time moves forward by the gap)."""
    before = zone_offsets(wall - 86400, zone)
    after = zone_offsets(wall + 86400, zone)
    before_fits = zone_offsets(wall - before, zone) == before
    after_fits = zone_offsets(wall - after, zone) == after
    return np.where(before_fits | ~after_fits, before, after)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    text = np.abs(values).astype(np.int64).astype(str).astype(np.dtypes.StringDType())
    return np.strings.zfill(text, width)


def _date_text(days: np.ndarray) -> np.ndarray:
    """``yyyy-MM-dd`` as Spark prints it: four-digit years, a sign beyond 9999 or before year 1."""
    year, month, day = days_to_civil(np.asarray(days))
    sign = np.where(year > 9999, "+", np.where(year < 0, "-", "")).astype(np.dtypes.StringDType())
    S = np.strings
    return S.add(
        S.add(S.add(S.add(sign, _digits(year, 4)), "-"), S.add(_digits(month, 2), "-")), _digits(day, 2)
    )


def format_date(days: np.ndarray) -> pa.Array:
    """Spark's date text."""
    return pa.array(_date_text(days).astype(object), type=pa.string())


def format_timestamp(micros: np.ndarray) -> pa.Array:
    """Spark's timestamp text in UTC: ``yyyy-MM-dd HH:mm:ss`` and the fraction without trailing zeros."""
    micros = np.asarray(micros, dtype=np.int64)
    seconds = np.floor_divide(micros, _MICROS)
    fraction = micros - seconds * _MICROS
    days = np.floor_divide(seconds, 86400)
    in_day = seconds - days * 86400
    S = np.strings
    clock = S.add(
        S.add(S.add(_digits(in_day // 3600, 2), ":"), S.add(_digits(in_day // 60 % 60, 2), ":")),
        _digits(in_day % 60, 2),
    )
    digits = S.rstrip(_digits(fraction, 6), "0")
    tail = np.where(fraction > 0, S.add(".", digits), "").astype(np.dtypes.StringDType())
    text = S.add(S.add(S.add(_date_text(days), " "), clock), tail)
    return pa.array(text.astype(object), type=pa.string())
