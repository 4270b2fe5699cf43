"""Each trap of Spark SQL semantics, checked on Spark and on the compiled side, ANSI off and on.

The expressions read columns of a one-row table (not literals) so that Spark evaluates them per
row, as in a job, instead of folding them at planning time. An expected value is what Spark
gives; ``Raises(cls)`` is an ANSI runtime error of that error class.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.sql import SqlCompileError, SqlRuntimeError, compile_sql
from parity_tests.sql_differential import error_class
from tests.support import spark_ansi


@dataclass(frozen=True)
class Raises:
    error_class: str


UTC = dt.UTC
ROW = {
    "i_seven": (7, pa.int32()),
    "i_minus7": (-7, pa.int32()),
    "i_three": (3, pa.int32()),
    "i_zero": (0, pa.int32()),
    "i_max": (2**31 - 1, pa.int32()),
    "i_neg_max": (-(2**31) + 1, pa.int32()),
    "i_min": (-(2**31), pa.int32()),
    "i_null": (None, pa.int32()),
    "l_max": (2**63 - 1, pa.int64()),
    "l_min": (-(2**63), pa.int64()),
    "l_two": (2, pa.int64()),
    "d_nan": (math.nan, pa.float64()),
    "d_inf": (math.inf, pa.float64()),
    "d_negzero": (-0.0, pa.float64()),
    "d_zero": (0.0, pa.float64()),
    "d_big": (3e9, pa.float64()),
    "d_neg27": (-2.7, pa.float64()),
    "d_null": (None, pa.float64()),
    "d_2675": (2.675, pa.float64()),
    "d_one": (1.0, pa.float64()),
    "s_15": ("1.5", pa.string()),
    "s_ws": ("\t a \t", pa.string()),
    "s_spaces": ("  a  ", pa.string()),
    "s_hello": ("hello", pa.string()),
    "s_unicode": ("héllo😀", pa.string()),
    "s_null": (None, pa.string()),
    "s_a": ("a", pa.string()),
    "s_hex": ("0x1.8p1", pa.string()),
    "s_strasse": ("straße", pa.string()),
    "s_dotted": ("İSTANBUL", pa.string()),
    "s_sigma": ("ΟΔΟΣ ΟΔΟΣ", pa.string()),
    "s_umlaut": ("  ÜNÏCODE Ltd ", pa.string()),
    "d_jan3": (dt.date(2021, 1, 3), pa.date32()),
    "d_dec31": (dt.date(2020, 12, 31), pa.date32()),
    "d_jan4": (dt.date(2021, 1, 4), pa.date32()),
    "t_before_dst": (dt.datetime(2021, 3, 14, 6, 59, 59, tzinfo=UTC), pa.timestamp("us", tz="UTC")),
    "t_after_dst": (dt.datetime(2021, 3, 14, 7, 0, 0, tzinfo=UTC), pa.timestamp("us", tz="UTC")),
    "t_gap_wall": (dt.datetime(2021, 3, 14, 2, 30, tzinfo=UTC), pa.timestamp("us", tz="UTC")),
    "t_overlap_wall": (dt.datetime(2021, 11, 7, 1, 30, tzinfo=UTC), pa.timestamp("us", tz="UTC")),
}
NY = "'America/New_York'"

# (trap, expression, expected with ANSI off, expected with ANSI on)
TRAPS = [
    ("int / int is double", "i_seven / i_three", 7 / 3, 7 / 3),
    ("div gives bigint", "i_minus7 div i_three", -2, -2),
    ("int + bigint is bigint", "i_max + l_two", 2**31 + 1, 2**31 + 1),
    ("int + double is double", "i_seven + d_one", 8.0, 8.0),
    ("a decimal literal times a double is double", "1.5 * d_one", 1.5, 1.5),
    ("a double literal", "i_seven * 0.5D", 3.5, 3.5),
    ("NaN = NaN", "d_nan = d_nan", True, True),
    ("NaN is above every number", "d_nan > d_inf", True, True),
    ("greatest skips nulls, NaN is greatest", "greatest(d_one, d_null, d_nan)", math.nan, math.nan),
    ("least skips nulls", "least(d_one, d_null, d_nan)", 1.0, 1.0),
    ("% takes the dividend's sign", "i_minus7 % i_three", -1, -1),
    ("% takes the dividend's sign (negative divisor)", "i_seven % (- i_three)", 1, 1),
    ("pmod is never negative", "pmod(i_minus7, i_three)", 2, 2),
    ("trim removes spaces only", "trim(s_ws)", "\t a \t", "\t a \t"),
    ("trim removes spaces", "trim(s_spaces)", "a", "a"),
    ("length counts characters", "length(s_unicode)", 6, 6),
    ("substring is 1-based", "substring(s_hello, 1, 2)", "he", "he"),
    ("substring position 0 is 1", "substring(s_hello, 0, 2)", "he", "he"),
    ("substring counts a negative start from the end", "substring(s_hello, -3, 2)", "ll", "ll"),
    ("CAST('1.5' AS INT)", "CAST(s_15 AS INT)", 1, Raises("CAST_INVALID_INPUT")),
    ("a Java hexadecimal float parses", "CAST(s_hex AS DOUBLE)", 3.0, 3.0),
    ("try_cast('1.5' AS INT)", "try_cast(s_15 AS INT)", None, None),
    ("double -> int truncates", "CAST(d_neg27 AS INT)", -2, -2),
    ("double -> int out of range", "CAST(d_big AS INT)", 2**31 - 1, Raises("CAST_OVERFLOW")),
    ("NaN -> int", "CAST(d_nan AS INT)", 0, Raises("CAST_OVERFLOW")),
    ("bigint -> int out of range", "CAST(l_max AS INT)", -1, Raises("CAST_OVERFLOW")),
    ("int overflow", "i_max + i_seven", -(2**31) + 6, Raises("ARITHMETIC_OVERFLOW")),
    ("bigint overflow", "l_max * l_two", -2, Raises("ARITHMETIC_OVERFLOW")),
    ("negating the smallest int", "- i_min", -(2**31), Raises("ARITHMETIC_OVERFLOW")),
    ("abs of the smallest bigint", "abs(l_min)", -(2**63), Raises("ARITHMETIC_OVERFLOW")),
    ("smallest bigint div -1", "l_min div (- l_two + 1)", -(2**63), Raises("ARITHMETIC_OVERFLOW")),
    ("division by zero", "i_seven / i_zero", None, Raises("DIVIDE_BY_ZERO")),
    ("division by -0.0", "d_one / d_negzero", None, Raises("DIVIDE_BY_ZERO")),
    ("null / 0 is null, no error", "i_null / i_zero", None, None),
    ("remainder by zero", "i_seven % i_zero", None, Raises("REMAINDER_BY_ZERO")),
    ("try_divide by zero", "try_divide(i_seven, i_zero)", None, None),
    (
        "an error in an untaken CASE branch",
        "CASE WHEN i_zero = 0 THEN 0.0D ELSE i_seven / i_zero END",
        0.0,
        0.0,
    ),
    ("concat with a null is null", "concat(s_a, s_null)", None, None),
    ("concat_ws skips nulls", "concat_ws('-', s_a, s_null, s_a)", "a-a", "a-a"),
    ("-0.0 = 0.0", "d_negzero = d_zero", True, True),
    ("-0.0 prints as -0.0", "CAST(d_negzero AS STRING)", "-0.0", "-0.0"),
    ("sign(-0.0) is -0.0", "sign(d_negzero)", -0.0, -0.0),
    ("-0.0 hashes as 0.0", "hash(d_negzero) = hash(d_zero)", True, True),
    ("round never gives -0.0", "round(d_negzero * d_one, 0)", 0.0, 0.0),
    ("round is HALF_UP on the decimal text", "round(d_2675, 2)", 2.68, 2.68),
    (
        "from_utc_timestamp before a DST change",
        f"from_utc_timestamp(t_before_dst, {NY})",
        dt.datetime(2021, 3, 14, 1, 59, 59, tzinfo=UTC),
        dt.datetime(2021, 3, 14, 1, 59, 59, tzinfo=UTC),
    ),
    (
        "from_utc_timestamp after a DST change",
        f"from_utc_timestamp(t_after_dst, {NY})",
        dt.datetime(2021, 3, 14, 3, 0, tzinfo=UTC),
        dt.datetime(2021, 3, 14, 3, 0, tzinfo=UTC),
    ),
    (
        "to_utc_timestamp in a DST gap",
        f"to_utc_timestamp(t_gap_wall, {NY})",
        dt.datetime(2021, 3, 14, 7, 30, tzinfo=UTC),
        dt.datetime(2021, 3, 14, 7, 30, tzinfo=UTC),
    ),
    (
        "to_utc_timestamp in a DST overlap takes the earlier offset",
        f"to_utc_timestamp(t_overlap_wall, {NY})",
        dt.datetime(2021, 11, 7, 5, 30, tzinfo=UTC),
        dt.datetime(2021, 11, 7, 5, 30, tzinfo=UTC),
    ),
    ("weekofyear is ISO: Jan 3 2021 is in week 53", "weekofyear(d_jan3)", 53, 53),
    ("weekofyear is ISO: Dec 31 2020", "weekofyear(d_dec31)", 53, 53),
    ("weekofyear is ISO: Jan 4 2021 starts week 1", "weekofyear(d_jan4)", 1, 1),
    ("upper applies full case mappings", "upper(s_strasse)", "STRASSE", "STRASSE"),
    # Spark's optimizer moves the constants of an integral + or * chain to its end
    # (ReorderAssociativeOperator), which decides what overflows under ANSI
    (
        "(x + c) + y runs as (x + y) + c: overflows",
        "(i_neg_max + 2147483647) + i_neg_max",
        -(2**31) + 1,
        Raises("ARITHMETIC_OVERFLOW"),
    ),
    ("(x + c) + y runs as (x + y) + c: fits", "(i_max + 1) + i_minus7", 2**31 - 7, 2**31 - 7),
    ("c + x runs as x + c", "1 + (i_max + i_minus7)", 2**31 - 7, 2**31 - 7),
    ("(x * c) * y runs as (x * y) * c: fits", "(i_max * 2) * i_zero", 0, 0),
    ("lower turns İ into two code points", "lower(s_dotted)", "i\u0307stanbul", "i\u0307stanbul"),
    ("lower gives a final sigma at a word's end", "lower(s_sigma)", "οδος οδος", "οδος οδος"),
    ("lower and trim of other non-ASCII letters", "lower(trim(s_umlaut))", "ünïcode ltd", "ünïcode ltd"),
]


def _table() -> pa.Table:
    return pa.table({name: pa.array([value], typ) for name, (value, typ) in ROW.items()})


def _same(actual, expected) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        if math.isnan(expected):
            return math.isnan(actual)
        return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    if isinstance(expected, dt.datetime) and isinstance(actual, dt.datetime):
        return actual.replace(tzinfo=UTC) == expected if actual.tzinfo is None else actual == expected
    return actual == expected and type(actual) is type(expected)


def _compiled(expr: str, ansi: bool):
    table = _table()
    compiled = compile_sql(expr, {n: table.schema.field(n).type for n in table.column_names}, ansi)
    try:
        return compiled.evaluate({n: table[n] for n in compiled.columns}, 1).to_pylist()[0]
    except SqlRuntimeError as error:
        return Raises(error.error_class)


@pytest.mark.parametrize("ansi", [False, True], ids=["ansi_off", "ansi_on"])
@pytest.mark.parametrize(("trap", "expr", "off", "on"), TRAPS, ids=[t[0] for t in TRAPS])
def test_trap_on_the_compiled_side(trap, expr, off, on, ansi):
    expected = on if ansi else off
    actual = _compiled(expr, ansi)
    assert _same(actual, expected), f"{trap}: {expr} gave {actual!r}, Spark gives {expected!r}"


@pytest.mark.spark
@pytest.mark.parametrize("ansi", [False, True], ids=["ansi_off", "ansi_on"])
def test_every_trap_on_spark(spark, ansi, tmp_path):
    """Spark gives the expected value of every trap (one query for the values, one per error).

    The table is read from Parquet, as jobs read their input: over an in-memory DataFrame
    (a LocalRelation) Spark's optimizer evaluates the projection before reordering + chains."""
    from pyspark.errors.exceptions.base import PySparkException  # noqa: F401  (pyspark is there)

    with spark_ansi(spark, ansi):
        pq.write_table(_table(), tmp_path / "traps.parquet")
        df = spark.read.parquet(str(tmp_path / "traps.parquet"))
        values = [(t, e, on if ansi else off) for t, e, off, on in TRAPS]
        plain = [v for v in values if not isinstance(v[2], Raises)]
        row = df.selectExpr(*[f"{e} AS e{k}" for k, (_, e, _) in enumerate(plain)]).collect()[0]
        wrong = [
            f"{t}: {e} gave {row[k]!r}, expected {x!r}"
            for k, (t, e, x) in enumerate(plain)
            if not _same(row[k], x)
        ]
        for trap, expr, expected in values:
            if isinstance(expected, Raises):
                try:
                    got = df.selectExpr(expr).collect()[0][0]
                    wrong.append(f"{trap}: {expr} gave {got!r}, expected {expected}")
                except Exception as error:  # noqa: BLE001
                    condition = error_class(error)
                    if condition != expected.error_class:
                        wrong.append(f"{trap}: {expr} raised {condition}, expected {expected}")
        assert not wrong, "\n".join(wrong)


def test_a_decimal_result_is_refused_with_the_cast_hint():
    with pytest.raises(SqlCompileError, match=r"CAST\(\.\.\. AS DOUBLE\)"):
        compile_sql("i_seven * 1.5", {"i_seven": pa.int32()}, ansi=True)


@pytest.mark.spark
def test_spark_types_int_times_a_decimal_literal_as_decimal(spark):
    """Why the compiler refuses it: Spark computes it in DECIMAL, which the Arrow side cannot match."""
    df = spark.createDataFrame(_table())
    assert df.selectExpr("i_seven * 1.5").schema[0].dataType.simpleString().startswith("decimal")


def test_case_mapping_reads_only_the_rows_of_a_sliced_array():
    """lower/upper decide ASCII or not, and whether a special-cased letter is there, from the
    UTF-8 bytes of the array's own rows: a slice of a larger array, and null slots, included."""
    values = ["ABC", "xyz", None, "İSTANBUL", "Ünï", "ΟΔΟΣ", "straße", "end"]
    parent = pa.array(values)
    slices = [(0, 8), (0, 2), (1, 3), (2, 3), (3, 4), (4, 5), (4, 6), (5, 6), (6, 7), (7, 8), (1, 1)]
    for start, stop in slices:
        part = parent.slice(start, stop - start)
        for fn in ("lower", "upper"):
            compiled = compile_sql(f"{fn}(s)", {"s": pa.string()}, ansi=True)
            got = compiled.evaluate({"s": part}, len(part)).to_pylist()
            want = [None if v is None else getattr(v, fn)() for v in values[start:stop]]
            assert got == want, (fn, start, stop)
