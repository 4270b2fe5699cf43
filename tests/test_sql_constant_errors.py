"""A constant that fails under ANSI (``CAST(' x ' AS INT)``): Spark's optimizer folds constants
while planning, so one outside any conditional branch fails the whole query, even where every row
would have skipped it (a null operand before it, a false AND); one inside a CASE or IF branch, or
after COALESCE's or NANVL's first input, fails only the rows that reach it. Each expression runs
on Spark and on the compiled side over rows that never reach the constant at run time."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.sql import SqlRuntimeError, compile_sql
from parity_tests.sql_differential import error_class
from tests.support import spark_ansi

X, XD = "CAST(' x ' AS INT)", "CAST(' x ' AS DOUBLE)"
EXPRESSIONS = [
    f"nanvl(d, {XD})",
    f"coalesce(d, {XD})",
    f"IF(d > 5, {X}, 1)",
    f"IF({X} = 1, 1, 2)",
    f"CASE WHEN {X} = 1 THEN 1 END",
    f"CASE WHEN d > 5 THEN {X} ELSE 0 END",
    f"CASE WHEN d > 5 THEN 1 WHEN {X} = 1 THEN 2 END",
    f"d > 5 AND {X} = 1",
    f"d < 5 OR {X} = 1",
    f"d IN (1.0, {XD})",
    f"greatest(d, {XD})",
    f"nullif(d, {XD})",
    f"abs({X})",
    f"{X} IS NULL",
    f"i + 1 + {X}",
    f"i * {X}",
    f"concat('a', CAST({X} AS STRING))",
    # IS [NOT] NULL of what cannot be null is answered before anything is evaluated
    "(2147483647 + 1) IS NULL",
    "CAST((- -2147483648) AS BOOLEAN) IS NOT NULL",
    "abs(-2147483648) IS NULL",
    "CAST(2147483648L AS INT) IS NULL",
    "(2147483647 + 1) IS NULL AND d > 0",
    f"{X} IS NOT NULL",
    "(1 / 0) IS NULL",
    "isnan(2147483647 + 1)",
    "coalesce(2147483647 + 1, 1)",
]


def _compiled(expr: str, table: pa.Table) -> str:
    """The error class the compiled side raises, or its values."""
    compiled = compile_sql(expr, {n: table.schema.field(n).type for n in table.column_names}, ansi=True)
    try:
        return str(compiled.evaluate({n: table[n] for n in compiled.columns}, table.num_rows).to_pylist())
    except SqlRuntimeError as error:
        return error.error_class


@pytest.mark.spark
def test_a_failing_constant_fails_the_query_where_spark_plans_it(spark, tmp_path):
    table = pa.table({"i": pa.array([None, None], pa.int32()), "d": pa.array([1.0, 2.0])})
    pq.write_table(table, tmp_path / "rows.parquet")
    with spark_ansi(spark, True):
        df = spark.read.parquet(str(tmp_path / "rows.parquet"))
        spark_says = {}
        for expr in EXPRESSIONS:
            try:
                rows = df.selectExpr(f"{expr} AS x").toArrow().column("x").to_pylist()
                spark_says[expr] = str(rows)
            except Exception as error:  # noqa: BLE001
                spark_says[expr] = error_class(error)
    ours = {expr: _compiled(expr, table) for expr in EXPRESSIONS}
    assert ours == spark_says
    raised = [v for v in ours.values() if not v.startswith("[")]
    assert 8 <= len(raised) < len(EXPRESSIONS) - 8  # both kinds are in the list
