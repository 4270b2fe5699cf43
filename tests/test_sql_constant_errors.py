"""A constant that fails under ANSI (``CAST(' x ' AS INT)``): Spark's optimizer folds constants
while planning, so one outside any conditional branch fails the whole query, even where every row
would have skipped it (a null operand before it, a false AND); one inside a CASE or IF branch, or
after COALESCE's or NANVL's first input, fails only the rows that reach it. Each expression runs
on Spark and on the compiled side over rows that never reach the constant at run time: through
``CompiledSql`` itself, through the ``sql`` transform on each backend, and as a whole job that
skips the driver's preflight, so that the transform path alone must give Spark's error."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.model.features import FeatureBatch
from common.model.transform_ops import apply_transforms
from common.run.runner import run_job
from common.spec.job import load_job
from common.spec.transforms import Transform
from common.sql import SqlRuntimeError, compile_sql
from common.sql.errors import runtime_error_line
from parity_tests.sql_differential import error_class
from tests.support import make_job, spark_ansi

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


ROWS = pa.table({"i": pa.array([None, None], pa.int32()), "d": pa.array([1.0, 2.0])})


def _sql(expr: str) -> Transform:
    return Transform(op="sql", column="", output="x", params={"expr": expr, "ansi": True})


def _answer(run) -> str:
    """The values ``run()`` gives, or the error class it raises."""
    try:
        return str(run().to_pylist())
    except SqlRuntimeError as error:
        return error.error_class


def _compiled(expr: str, table: pa.Table) -> str:
    compiled = compile_sql(expr, {n: table.schema.field(n).type for n in table.column_names}, ansi=True)
    return _answer(lambda: compiled.evaluate({n: table[n] for n in compiled.columns}, table.num_rows))


def through_the_transform(table: pa.Table, expressions: list[str]) -> list[str]:
    """Each expression as the ``sql`` transform the model process runs (Ray's and the reference's)."""

    def run(expr: str) -> pa.Array:
        batch = FeatureBatch(table, "cpu")
        apply_transforms(batch, [_sql(expr)])
        return batch.arrow("x")

    return [_answer(lambda e=expr: run(e)) for expr in expressions]


@pytest.fixture(scope="module")
def spark_says(spark, tmp_path_factory) -> dict[str, str]:
    """Spark's own answer to each expression over ROWS (read from Parquet, as a job reads)."""
    path = tmp_path_factory.mktemp("constant_errors") / "rows.parquet"
    pq.write_table(ROWS, path)
    says = {}
    with spark_ansi(spark, True):
        df = spark.read.parquet(str(path))
        for expr in EXPRESSIONS:
            try:
                says[expr] = str(df.selectExpr(f"{expr} AS x").toArrow().column("x").to_pylist())
            except Exception as error:  # noqa: BLE001
                says[expr] = error_class(error)
    return says


@pytest.mark.spark
def test_a_failing_constant_fails_the_query_where_spark_plans_it(spark_says):
    ours = {expr: _compiled(expr, ROWS) for expr in EXPRESSIONS}
    assert ours == spark_says
    raised = [v for v in ours.values() if not v.startswith("[")]
    assert 8 <= len(raised) < len(EXPRESSIONS) - 8  # both kinds are in the list


def test_the_sql_transform_on_each_backend_gives_sparks_answer(any_backend, spark, spark_says, tmp_path):
    """The transform itself, not the driver's checks: Spark's transform (``F.expr``) on a
    DataFrame, the model process's kernel in one Ray task, and in this process for the reference."""
    if any_backend == "spark":
        from spark_backend.transforms import apply_transforms as spark_transforms

        pq.write_table(ROWS, tmp_path / "rows.parquet")
        with spark_ansi(spark, True):
            df = spark.read.parquet(str(tmp_path / "rows.parquet"))
            got = []
            for expr in EXPRESSIONS:
                try:
                    got.append(str(spark_transforms(df, [_sql(expr)]).toArrow().column("x").to_pylist()))
                except Exception as error:  # noqa: BLE001
                    got.append(error_class(error))
    elif any_backend == "ray":
        import ray

        got = ray.get(ray.remote(through_the_transform).remote(ROWS, EXPRESSIONS))
    else:
        got = through_the_transform(ROWS, EXPRESSIONS)
    assert dict(zip(EXPRESSIONS, got, strict=True)) == spark_says


def test_a_job_fails_with_sparks_error_from_the_transform_path_alone(any_backend, tmp_path: Path):
    """The issue's expression as a whole job on each backend, without the driver's preflight (the
    rows never reach the constant, so only Spark's planning rule can fail it)."""
    expr = "CAST(x2 > 100 AND CAST(' x ' AS INT) = 1 AS DOUBLE) + x2"
    job = make_job(tmp_path, rows=40)
    bundle = tmp_path / "bundle" / "bundle.toml"
    text = bundle.read_text()
    scale = text[text.index('[[transforms]]\nop = "standard_scale"') :].split("\n\n", 1)[0]
    bundle.write_text(text.replace(scale, f'[[transforms]]\nop = "sql"\noutput = "x2_z"\nexpr = "{expr}"'))
    with pytest.raises(SqlRuntimeError) as info:
        run_job(load_job(job), any_backend, check_model=False)
    assert info.value.error_class == "CAST_INVALID_INPUT"
    assert str(info.value) == runtime_error_line("x2_z", expr, "CAST_INVALID_INPUT")
