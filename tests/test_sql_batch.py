"""The sql transform's worker glue on a FeatureBatch, and Spark's ANSI errors read as one line."""

from __future__ import annotations

import pyarrow as pa
import pytest

from common.model.features import FeatureBatch, TensorColumn
from common.model.sql_transform import apply_sql
from common.sql import SqlRuntimeError
from common.sql.spark_errors import sql_error_line
from tests.support import spark_ansi


def _batch() -> FeatureBatch:
    table = pa.table(
        {
            "amount": pa.array([10.0, 3.0, None]),
            "items": pa.array([2, 0, 1], pa.int32()),
            "merchant": pa.array(["  Acme ", "BOB", None]),
        }
    )
    return FeatureBatch(table, "cpu")


def test_a_double_result_stays_a_tensor_and_an_int_or_string_result_is_arrow():
    batch = _batch()
    apply_sql(
        batch, "ratio", "CASE WHEN items > 0 THEN amount / items ELSE NULL END", True, ("items", "amount")
    )
    apply_sql(batch, "items2", "items * 2", True, ("items",))
    apply_sql(batch, "clean", "lower(trim(merchant))", True, ("merchant",))
    assert isinstance(batch._get("ratio"), TensorColumn)
    assert batch.arrow("ratio").to_pylist() == [5.0, None, None]
    assert batch.arrow("items2").type == pa.int32() and batch.arrow("items2").to_pylist() == [4, 0, 2]
    assert batch.arrow("clean").to_pylist() == ["acme", "bob", None]


def test_a_later_transform_reads_an_earlier_output_on_the_device():
    batch = _batch()
    apply_sql(batch, "ratio", "amount / 2", True, ("amount",))
    apply_sql(batch, "bucket", "CASE WHEN ratio >= 5 THEN 'high' ELSE 'low' END", True, ("ratio",))
    assert batch.arrow("bucket").to_pylist() == ["high", "low", "low"]


def test_an_ansi_error_is_one_line_naming_output_expression_and_class():
    batch = _batch()
    with pytest.raises(SqlRuntimeError) as info:
        apply_sql(batch, "per_item", "amount / items", True, ("amount", "items"))
    message = str(info.value)
    assert info.value.error_class == "DIVIDE_BY_ZERO"
    assert '"per_item"' in message and "`amount / items`" in message and "[DIVIDE_BY_ZERO]" in message
    apply_sql(batch, "per_item", "amount / items", False, ("amount", "items"))  # ANSI off: null
    assert batch.arrow("per_item").to_pylist() == [5.0, None, None]


@pytest.mark.spark
def test_spark_ansi_errors_map_to_the_same_line(spark):
    df = spark.createDataFrame(pa.table({"amount": [1.0], "items": pa.array([0], pa.int32()), "s": ["x"]}))
    transforms = [("clean", "lower(s)"), ("per_item", "amount / items"), ("n", "CAST(s AS INT)")]
    with spark_ansi(spark, True):
        for output, expr in transforms[1:]:
            with pytest.raises(Exception) as info:
                df.selectExpr(expr).collect()
            line = sql_error_line(info.value, transforms)
            expected_class = {"per_item": "DIVIDE_BY_ZERO", "n": "CAST_INVALID_INPUT"}[output]
            assert line is not None and f'"{output}"' in line and f"[{expected_class}]" in line, line
        assert sql_error_line(ValueError("boom"), transforms) is None
