"""Strings cast to timestamps, compiled side against Spark: the layouts Spark's parser takes (an
hour alone, fractions of any length, a time alone) and the zone written after the time, which
Spark reads with java.time (offsets in six layouts, Z, UTC/GMT/UT with an offset, short ids,
regions with their daylight-saving gaps and overlaps) and every near miss of those."""

from __future__ import annotations

import pyarrow as pa
import pytest

from common.sql import compile_sql
from tests.support import spark_ansi

TEXTS = [
    # layouts
    "2021-03-14",
    "2021-03-14 02",
    "2021-03-14T02",
    "2021-03-14 2:3",
    "2021-03-14 02:30:00",
    "2021-03-14 02:30:00.",
    "2021-03-14 02:30:00.1",
    "2021-03-14 02:30:00.123456789",
    "2021-3-4 2:3:4.5",
    "+2021-03-14 02:30:00",
    "-0044-03-15 12:00:00",
    "123456-01-01 00:00:00",
    "1234567-01-01 00:00:00",
    "2021-03-14 24:00:00",
    "2021-02-29 00:00:00",
    "2021-03-14 02:30:000",
    "2021-03-14 02:30Z",
    "2021-03-14 02:",
    "2021-03-14T",
    "2021",
    "2021-03",
    # zones after the seconds or the fraction
    "2021-03-14 02:30:00Z",
    "2021-03-14 02:30:00.5Z",
    "2021-03-14 02:30:00.Z",
    "2021-03-14 02:30:00+1",
    "2021-03-14 02:30:00-7",
    "2021-03-14 02:30:00+01",
    "2021-03-14 02:30:00-0130",
    "2021-03-14 02:30:00+01:30",
    "2021-03-14 02:30:00+1:30",
    "2021-03-14 02:30:00+01:3",
    "2021-03-14 02:30:00+013045",
    "2021-03-14 02:30:00+01:30:45",
    "2021-03-14 02:30:00+18",
    "2021-03-14 02:30:00-18:00",
    "2021-03-14 02:30:00+18:01",
    "2021-03-14 02:30:00+19",
    "2021-03-14 02:30:00+0",
    "2021-03-14 02:30:00+",
    "2021-03-14 02:30:00 UTC",
    "2021-03-14 02:30:00UTC",
    "2021-03-14 02:30:00 GMT+5",
    "2021-03-14 02:30:00 UTC-05:30",
    "2021-03-14 02:30:00 UT+1",
    "2021-03-14 02:30:00 UTX",
    "2021-03-14 02:30:00 GMT0",
    "2021-03-14 02:30:00 EST",
    "2021-03-14 02:30:00 PST",
    "2021-03-14 02:30:00 America/New_York",
    "2021-03-14 03:30:00 America/New_York",
    "2021-11-07 01:30:00 America/New_York",
    "2021-03-28 02:30:00 Europe/Berlin",
    "2021-10-31 02:30:00 Europe/Berlin",
    "2021-03-14 02:30:00 america/new_york",
    "2021-03-14 02:30:00 Mars/Olympus",
    "2021-03-14 02:30:00 Z",
    "2021-03-14 02:30:00 ",
    "2021-03-14 02:30:00 x",
    "2021-03-14 02:30:00.5.5",
    # a time alone: today, in the zone it names
    "12:34",
    "1:2",
    "12:34:56.789",
    "T12",
    "T12:34:56",
    "12:34:56+01:00",
    "12:34:56 UTC",
    "12:",
    "T",
    "TT12",
    "+12:34",
    None,
]


def _compiled(expr: str, ansi: bool) -> list:
    compiled = compile_sql(expr, {"s": pa.string()}, ansi)
    result = compiled.evaluate({"s": pa.array(TEXTS, pa.string())}, len(TEXTS))
    return result.cast(pa.int64()).to_pylist()  # microseconds: years beyond 9999 included


@pytest.mark.spark
@pytest.mark.parametrize("ansi", [False, True], ids=["ansi_off", "ansi_on"])
def test_strings_cast_to_timestamps_as_spark_does(spark, ansi):
    expr = "CAST(s AS TIMESTAMP)" if not ansi else "try_cast(s AS TIMESTAMP)"
    with spark_ansi(spark, ansi):
        df = spark.createDataFrame(
            pa.table({"k": list(range(len(TEXTS))), "s": pa.array(TEXTS, pa.string())})
        )
        rows = (
            df.selectExpr("k", f"{expr} AS t").toArrow().sort_by("k").column("t").cast(pa.int64()).to_pylist()
        )
    ours = _compiled(expr, ansi)
    wrong = [
        f"{text!r}: spark {want}, compiled {got}"
        for text, want, got in zip(TEXTS, rows, ours, strict=True)
        if want != got
    ]
    assert not wrong, "\n".join(wrong)
    assert sum(v is not None for v in rows) >= 40  # most of the catalogue parses
