"""The zone written after a timestamp string's time, read as Spark reads it.

Spark's string -> timestamp takes everything after the seconds (or their fraction) as a zone and
hands it to ``SparkDateTimeUtils.getZoneId``: two rewrites for pre-3.0 forms (``+h:mm`` ->
``+0h:mm``, ``+hh:m`` -> ``+hh:0m``), then ``java.time.ZoneId.of(id, SHORT_IDS)``:

- ``Z``, or a text of one character or starting with ``+``/``-``: ``ZoneOffset.of``, which takes
  ``+h``, ``+hh``, ``+hh:mm``, ``+hhmm``, ``+hh:mm:ss`` and ``+hhmmss``, at most 18 hours;
- ``UTC``, ``GMT``, ``UT`` alone, or followed by ``+``/``-`` and an offset as above;
- a short id of ``ZoneId.SHORT_IDS`` (``EST`` is -05:00, ``PST`` America/Los_Angeles);
- anything else: a region of the time-zone database (``Europe/Paris``), case-sensitive.

Anything Java refuses makes the row's cast null (an error under ANSI).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass

# java.time.ZoneId.SHORT_IDS
SHORT_IDS = {
    "ACT": "Australia/Darwin",
    "AET": "Australia/Sydney",
    "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo",
    "AST": "America/Anchorage",
    "BET": "America/Sao_Paulo",
    "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare",
    "CNT": "America/St_Johns",
    "CST": "America/Chicago",
    "CTT": "Asia/Shanghai",
    "EAT": "Africa/Addis_Ababa",
    "ECT": "Europe/Paris",
    "IET": "America/Indiana/Indianapolis",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "MIT": "Pacific/Apia",
    "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland",
    "PLT": "Asia/Karachi",
    "PNT": "America/Phoenix",
    "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles",
    "SST": "Pacific/Guadalcanal",
    "VST": "Asia/Ho_Chi_Minh",
    "EST": "-05:00",
    "MST": "-07:00",
    "HST": "-10:00",
}
_REGION_ID = re.compile(r"[A-Za-z][A-Za-z0-9~/._+-]+")
_NOT_IN_JAVA = {"Factory", "localtime", "posixrules"}  # files of a tz folder that are no zone to Java
# What Java's String.trim and Spark's casts from string trim: every code point up to ' '.
TRIMMED = "".join(chr(c) for c in range(0x21))


@dataclass(frozen=True)
class Zone:
    """A fixed offset from UTC in seconds, or a region whose offset depends on the instant."""

    offset: int = 0
    region: str | None = None


def _offset(text: str) -> Zone | None:
    """java.time.ZoneOffset.of."""
    if text == "Z":
        return Zone(0)
    if len(text) == 2:
        text = text[0] + "0" + text[1]
    layouts = {3: (1, None, None), 5: (1, 3, None), 6: (1, 4, None), 7: (1, 3, 5), 9: (1, 4, 7)}
    if len(text) not in layouts or text[0] not in "+-":
        return None
    colons = {6: (3,), 9: (3, 6)}.get(len(text), ())
    if any(text[i] != ":" for i in colons):
        return None
    parts = []
    for start in layouts[len(text)]:
        digits = "00" if start is None else text[start : start + 2]
        if not (len(digits) == 2 and digits.isascii() and digits.isdigit()):
            return None
        parts.append(int(digits))
    hours, minutes, seconds = parts
    if hours > 18 or minutes > 59 or seconds > 59 or (hours == 18 and (minutes or seconds)):
        return None
    sign = -1 if text[0] == "-" else 1
    return Zone(sign * (hours * 3600 + minutes * 60 + seconds))


def _region(name: str) -> Zone | None:
    if not _REGION_ID.fullmatch(name) or name in _NOT_IN_JAVA or name.startswith(("posix/", "right/")):
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return Zone(region=name)


@functools.lru_cache(maxsize=4096)
def java_zone(text: str) -> Zone | None:
    """The zone ``text`` names for Spark's string -> timestamp, or None when Java refuses it."""
    text = text.strip(TRIMMED)
    text = re.sub(r"([+-])([0-9]):", r"\g<1>0\2:", text, count=1)  # Java's \d is ASCII
    text = re.sub(r"([+-])([0-9][0-9]):([0-9])$", r"\1\2:0\3", text, count=1)
    text = SHORT_IDS.get(text, text)
    if len(text) <= 1 or text[0] in "+-":
        return _offset(text)
    for prefix in ("UTC", "GMT", "UT"):
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if rest == "":
                return Zone(0)
            if rest[0] in "+-":
                return _offset(rest)
            break
    return _region(text)
