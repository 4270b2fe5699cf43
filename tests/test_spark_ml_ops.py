"""The Spark ML feature-stage ops against the real Spark stages, value by value.

One fitted PipelineModel holds every supported feature stage with the parameters that change
results; it is imported, and its transforms run two ways on a table of edge values (null, NaN,
+-0.0, +-inf, ties at the splits, fractions, unseen and empty strings): as our Arrow/torch ops
and as their Spark-column twins. Both must give the real stages' values bit for bit. Each
``handleInvalid = "error"`` stage must fail on its bad rows on all three.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import InputError
from common.model.features import FeatureBatch
from common.model.transform_ops import apply_transforms
from common.spark_ml_import import import_pipeline
from common.spec.bundle import load_bundle
from common.spec.transforms import parse_transforms, slot_name

pytestmark = pytest.mark.spark

NAN, INF = float("nan"), float("inf")
X = [0.0, -0.0, 1.5, NAN, None, 2.0, -1.0, 0.99999, 1.0, INF, -INF, 0.5, -0.5, 1e300, 5e-324, 0.25]
INDEX = [0.0, 1.0, 2.0, 2.5, -0.5, 3.0, None, NAN, 1.9, 0.0, 1.0, 2.0, 0.0, 1.0, -0.0, 2.0]
INTS = [1, None, 4, 2, 7, -3, 0, 1, 2, 3, None, 5, 6, 1, 2, 3]
FLOATS = [1.5, None, NAN, 2.25, 0.1, -0.0, 3.0, 1e-3, 2.0, None, 1.0, 4.0, 5.0, 6.0, 7.0, 8.0]
STRINGS = ["a", "b", None, "", "zz", "a", "b", "c", "a", "a", "b", "c", "", None, "c", "b"]
SCALARS = ["x_bucket", "x_bin", "cat_idx", "i_filled", "f_filled", "x_filled"]
VECTORS = [
    "index_vec",
    "cat_vec",
    "v",
    "w",
    "w_std",
    "w_scaled",
    "w_minmax",
    "w_maxabs",
    "w_product",
    "v_bin",
]


def edge_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(len(X)), pa.int64()),
            "x": pa.array(X, pa.float64()),
            "idx": pa.array(INDEX, pa.float64()),
            "i": pa.array(INTS, pa.int32()),
            "f": pa.array(FLOATS, pa.float32()),
            "cat": pa.array(STRINGS),
        }
    )


def fit_feature_pipeline(spark):
    """Every supported feature stage, fitted on clean rows, ending in a small classifier."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import (
        Binarizer,
        Bucketizer,
        ElementwiseProduct,
        Imputer,
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )
    from pyspark.ml.linalg import Vectors

    train = spark.createDataFrame(
        [
            (0, 0.5, 0.0, 1, 1.0, "a", 0.0),
            (1, -2.0, 1.0, 3, 2.0, "b", 1.0),
            (2, 3.0, 2.0, 5, 4.5, "c", 0.0),
            (3, 0.0, 1.0, 2, 0.5, "a", 1.0),
        ],
        "id long, x double, idx double, i int, f float, cat string, label double",
    )
    stages = [
        Bucketizer(
            inputCol="x", outputCol="x_bucket", splits=[-INF, -1.0, 0.0, 0.5, 1.0, INF], handleInvalid="keep"
        ),
        Binarizer(inputCol="x", outputCol="x_bin", threshold=0.5),
        StringIndexer(
            inputCol="cat", outputCol="cat_idx", handleInvalid="keep", stringOrderType="alphabetDesc"
        ),
        OneHotEncoder(
            inputCols=["idx", "cat_idx"], outputCols=["index_vec", "cat_vec"], handleInvalid="keep"
        ),
        Imputer(inputCols=["i", "f"], outputCols=["i_filled", "f_filled"], strategy="mean"),
        Imputer(inputCols=["x"], outputCols=["x_filled"], missingValue=-1.0, strategy="median"),
        VectorAssembler(
            inputCols=["x", "i", "f", "index_vec", "x_bucket"], outputCol="v", handleInvalid="keep"
        ),
        VectorAssembler(
            inputCols=["i_filled", "f_filled", "cat_vec", "idx"], outputCol="w", handleInvalid="keep"
        ),
        StandardScaler(inputCol="w", outputCol="w_std", withMean=True, withStd=True),
        StandardScaler(inputCol="w", outputCol="w_scaled", withMean=False, withStd=True),
        MinMaxScaler(inputCol="w", outputCol="w_minmax", min=-1.0, max=2.0),
        MaxAbsScaler(inputCol="w", outputCol="w_maxabs"),
        ElementwiseProduct(
            inputCol="w", outputCol="w_product", scalingVec=Vectors.dense([0.5, -2.0, 3, 1, 1, 1, 1])
        ),
        Binarizer(inputCol="v", outputCol="v_bin", threshold=-0.7),
        LogisticRegression(featuresCol="w_std", labelCol="label", maxIter=5),
    ]
    return Pipeline(stages=stages).fit(train)


@pytest.fixture(scope="module")
def imported(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("ml_ops")
    fit_feature_pipeline(spark).write().save(str(root / "pipeline"))
    import_pipeline(root / "pipeline", root / "bundle")
    pq.write_table(edge_table(), root / "edge.parquet")
    return root


def _bits(values) -> np.ndarray:
    """Bit patterns, with every NaN one pattern and -0.0 as 0.0: Spark's sparse vectors drop -0.0
    (a stored zero is +0.0), so its sign in a slot depends on Spark's choice of representation."""
    array = np.asarray(values, dtype=np.float64) + 0.0
    return np.where(np.isnan(array), -1, array.view(np.int64))


def _spark_values(spark, root, pipeline=None):
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    pipeline = pipeline or PipelineModel.load(str(root / "pipeline"))
    out = pipeline.transform(spark.read.parquet(str(root / "edge.parquet")))
    vectors = [F.when(F.col(c).isNull(), None).otherwise(vector_to_array(c)).alias(c) for c in VECTORS]
    return out.orderBy("id").select(*SCALARS, *vectors).toPandas()


def _columns(name: str, width: int) -> list[str]:
    return [slot_name(name, j) for j in range(width)] if name in VECTORS else [name]


def test_feature_ops_give_the_spark_stages_values_bit_for_bit(spark, imported):
    from spark_backend.transforms import apply_transforms as spark_transforms

    bundle = load_bundle(imported / "bundle")
    expected = _spark_values(spark, imported)
    table = edge_table()
    batch = FeatureBatch(table, "cpu")
    apply_transforms(batch, bundle.transforms)
    names = {c: _columns(c, len(expected[c][0]) if c in VECTORS else 1) for c in SCALARS + VECTORS}
    twin = spark_transforms(spark.read.parquet(str(imported / "edge.parquet")), bundle.transforms)
    from spark_backend.transforms import _col

    twin = twin.orderBy("id").select(*[_col(n) for c in names for n in names[c]]).toPandas()
    for column, slots in names.items():
        rows = [v if v is not None else [None] * len(slots) for v in expected[column]]
        spark_side = _bits(np.array(rows, dtype=np.float64).reshape(len(table), len(slots)))
        ours = _bits(np.stack([np.array(batch.arrow(s).to_pylist(), dtype=np.float64) for s in slots], 1))
        theirs = _bits(np.stack([np.array(twin[s].tolist(), dtype=np.float64) for s in slots], 1))
        assert (ours == spark_side).all(), (
            f"kernel {column}: rows {np.flatnonzero((ours != spark_side).any(1))}"
        )
        assert (theirs == spark_side).all(), (
            f"twin {column}: rows {np.flatnonzero((theirs != spark_side).any(1))}"
        )


def test_imported_ops_are_what_the_stages_declare(imported):
    bundle = load_bundle(imported / "bundle")
    ops = [t.op for t in bundle.transforms]
    assert {
        "bucketize_splits",
        "binarize",
        "string_index",
        "one_hot_index",
        "impute",
        "assemble",
        "scale_shift",
        "rescale",
    } <= set(ops)
    impute = [t for t in bundle.transforms if t.op == "impute"]
    assert all(t.params["cast_to_input"] for t in impute)
    assert [t.params["missing_value"] for t in impute] == [None, None, -1.0]
    bucket = next(t for t in bundle.transforms if t.op == "bucketize_splits")
    assert bucket.params["splits"][0] == -math.inf and bucket.params["handle_invalid"] == "keep"


ERROR_CASES = {
    # stage -> (bad values for its input column, the kernel's message)
    "string_index": ({"cat": ["a", "unseen"]}, "unseen value 'unseen'"),
    "string_index_null": ({"cat": ["a", None]}, "a null value"),
    "one_hot_index": ({"idx": [0.0, 7.0]}, "unseen value 7.0"),
    "one_hot_index_negative": ({"idx": [0.0, -1.0]}, "negative value -1.0"),
    "assemble": ({"x": [1.0, NAN]}, "NaN in 1 row(s)"),
    "assemble_null": ({"x": [1.0, None]}, "null in 1 row(s)"),
    "bucketize_splits": ({"x": [1.0, 9.0]}, "value 9.0 is outside"),
    "bucketize_splits_nan": ({"x": [1.0, NAN]}, "NaN, which"),
}


def _error_transforms(case: str):
    op = case.replace("_null", "").replace("_negative", "").replace("_nan", "")
    column = next(iter(ERROR_CASES[case][0]))
    table = {
        "string_index": {"vocabulary": ["a", "b"], "handle_invalid": "error"},
        "one_hot_index": {"size": 3, "drop_last": True, "handle_invalid": "error"},
        "assemble": {"handle_invalid": "error"},
        "bucketize_splits": {"splits": [0.0, 1.0, 5.0], "handle_invalid": "error"},
    }[op]
    return parse_transforms([{"op": op, "column": column, "output": "out", **table}], "test")


def _error_stage(case: str):
    from pyspark.ml.feature import Bucketizer, StringIndexerModel, VectorAssembler

    op = case.replace("_null", "").replace("_negative", "").replace("_nan", "")
    if op == "string_index":
        return StringIndexerModel.from_labels(
            ["a", "b"], inputCol="cat", outputCol="out", handleInvalid="error"
        )
    if op == "assemble":
        return VectorAssembler(inputCols=["x"], outputCol="out", handleInvalid="error")
    if op == "bucketize_splits":
        return Bucketizer(splits=[0.0, 1.0, 5.0], inputCol="x", outputCol="out", handleInvalid="error")
    return None  # OneHotEncoderModel has no public constructor: its twin and kernel are checked alone


def _table(case: str) -> tuple[str, list, pa.Table]:
    column, data = next(iter(ERROR_CASES[case][0].items()))
    typ = pa.string() if column == "cat" else pa.float64()
    return column, data, pa.table({"id": pa.array(range(len(data)), pa.int64()), column: pa.array(data, typ)})


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_handle_invalid_error_fails_the_kernel(case):
    _, _, table = _table(case)
    with pytest.raises(InputError, match=re.escape(ERROR_CASES[case][1])):
        apply_transforms(FeatureBatch(table, "cpu"), _error_transforms(case))


@pytest.mark.parametrize("case", ["string_index", "one_hot_index", "assemble", "bucketize_splits_nan"])
def test_handle_invalid_error_fails_the_spark_twin_and_the_stage(spark, case):
    """One failing Spark job per side and op (each costs the session's task retries)."""
    from spark_backend.transforms import apply_transforms as spark_transforms

    column, data, _ = _table(case)
    df = spark.createDataFrame(
        list(enumerate(data)), f"id long, {column} {'string' if column == 'cat' else 'double'}"
    )
    with pytest.raises(Exception, match="InputError: transform"):
        spark_transforms(df, _error_transforms(case)).collect()
    stage = _error_stage(case)
    if stage is not None:
        with pytest.raises(Exception, match="(?i)unseen|null|NaN|bounds"):
            stage.transform(df).collect()
