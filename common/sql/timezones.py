"""UTC offsets of IANA time zones at many instants, as Java (and so Spark) computes them.

``zoneinfo`` is the source because it applies a zone's rules after its last listed transition,
as Java does; Arrow's time-zone kernels do not (winter time for summer instants after 2037).
Per-year transition tables are built once per zone and year and applied with ``searchsorted``.
"""

from __future__ import annotations

import functools
import itertools
from datetime import datetime, timedelta

import numpy as np

_FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00Z: Python's time zones end at years 1 and 9999
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z


def utc_offsets(seconds: np.ndarray, zone: str) -> np.ndarray:
    """The zone's UTC offset (seconds) at each instant, from per-year transition tables.

    ``zoneinfo`` is the source because it applies the rules after the last listed transition
    (like Java's time zones); Arrow's own time-zone kernels do not, and give winter time for
    summer instants after 2037 (and after the last rule change with a "slim" tzdata).
    """
    if seconds.size == 0:
        return np.zeros(0, dtype=np.int64)
    if seconds.min() < _FIRST_SECOND or seconds.max() > _LAST_SECOND:
        raise ValueError("timestamps must lie between the years 1 and 9999")
    years = np.unique(seconds.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970)
    starts, offsets = [], []
    for year in years.tolist():
        year_starts, year_offsets = _zone_year(zone, year)
        starts += year_starts
        offsets += year_offsets
    index = np.searchsorted(np.array(starts, dtype=np.int64), seconds, side="right") - 1
    return np.array(offsets, dtype=np.int64)[index]


@functools.lru_cache(maxsize=65536)
def _zone_year(zone: str, year: int) -> tuple[list[int], list[int]]:
    """(segment starts, offsets) covering one UTC year, each change bisected to the second.

    The offset is sampled daily in 1900-2100, where wartime and political changes can be days
    apart, and weekly elsewhere (local mean time before, annual rules after), so that data
    spread over centuries still costs milliseconds per year.
    """
    import zoneinfo

    tz = zoneinfo.ZoneInfo(zone)
    epoch = datetime(1970, 1, 1, tzinfo=tz)  # fromutc reads it as UTC

    def offset(second: int) -> int:
        second = min(
            max(second, _FIRST_SECOND + 2 * 86400), _LAST_SECOND - 2 * 86400
        )  # keep local time in range
        return int(tz.utcoffset(tz.fromutc(epoch + timedelta(seconds=second))).total_seconds())

    def year_start(y: int) -> int:
        return (datetime(y, 1, 1).toordinal() - 719163) * 86400 if y <= 9999 else _LAST_SECOND + 1

    start, end = year_start(year), year_start(year + 1)
    step = 86400 if 1900 <= year <= 2100 else 7 * 86400
    samples = list(range(start, end, step)) + [end - 1]
    values = [offset(s) for s in samples]
    starts, offsets = [start], [values[0]]
    for (lo, before), (hi, after) in itertools.pairwise(zip(samples, values, strict=True)):
        if before == after:
            continue
        while hi - lo > 1:  # offset(lo) == before != offset(hi); transitions fall on whole seconds
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
        starts.append(hi)
        offsets.append(offset(hi))
    return starts, offsets
