"""Every supported predictor stage, and each way Spark derives ``prediction``, against Spark itself.

Each model is trained small in Spark behind a VectorAssembler (``keep``, so NaN features reach
the trees: NaN goes right), saved, imported, and evaluated in this process through the bundle's
transforms and its ``spark_ml`` handler. Outputs must equal ``PipelineModel.transform``'s bit for
bit, except those the importer declares inexact, which must be within the declared tolerance.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from common.model.features import FeatureBatch
from common.model.kinds import handler_for
from common.model.transform_ops import apply_transforms
from common.parity.column_diff import ulp_distance
from common.spark_ml_import import import_pipeline
from common.spec.bundle import load_bundle

pytestmark = pytest.mark.spark
FEATURES = [f"f{i}" for i in range(8)]


def _table(loader, classes: int | None, seed: int, nan_share: float) -> pa.Table:
    data = loader()
    x, y = (
        np.asarray(data.data[:, : len(FEATURES)], dtype=np.float64),
        np.asarray(data.target, dtype=np.float64),
    )
    rng = np.random.default_rng(seed)
    x = x.copy()
    x[rng.random(x.shape) < nan_share] = np.nan  # NaN features (scoring only): trees send them right
    if classes is not None:
        y = np.minimum(y, classes - 1)
    columns = {"id": pa.array(np.arange(len(x), dtype=np.int64)), "label": pa.array(y)}
    columns.update({f: pa.array(x[:, i]) for i, f in enumerate(FEATURES)})
    return pa.table(columns)


MODELS = {  # name -> (dataset, classes, the thresholds to set on the fitted model)
    "dt_classifier_thresholds_probability_only": ("cancer", 2, [0.3, 0.7]),
    "rf_classifier_3_classes_raw_only": ("wine", 3, None),
    "lr_binary_thresholds_probability_only": ("cancer", 2, [0.6, 0.4]),
    "lr_binary_prediction_only": ("cancer", 2, None),
    "gbt_classifier_thresholds": ("cancer", 2, [0.4, 0.6]),
    "gbt_regressor": ("diabetes", None, None),
    "dt_regressor": ("diabetes", None, None),
    "linear_regression": ("diabetes", None, None),
}


def _estimator(name: str):
    from pyspark.ml.classification import DecisionTreeClassifier, GBTClassifier, LogisticRegression
    from pyspark.ml.classification import RandomForestClassifier as RF
    from pyspark.ml.regression import DecisionTreeRegressor, GBTRegressor, LinearRegression

    common = {"featuresCol": "features", "labelCol": "label"}
    return {
        "dt_classifier_thresholds_probability_only": lambda: DecisionTreeClassifier(
            maxDepth=4, rawPredictionCol="", **common
        ),
        "rf_classifier_3_classes_raw_only": lambda: RF(
            numTrees=5, maxDepth=4, seed=3, probabilityCol="", **common
        ),
        "lr_binary_thresholds_probability_only": lambda: LogisticRegression(
            maxIter=20, rawPredictionCol="", **common
        ),
        "lr_binary_prediction_only": lambda: LogisticRegression(
            maxIter=20, threshold=0.7, rawPredictionCol="", probabilityCol="", **common
        ),
        "gbt_classifier_thresholds": lambda: GBTClassifier(maxIter=4, maxDepth=3, **common),
        "gbt_regressor": lambda: GBTRegressor(maxIter=4, maxDepth=3, **common),
        "dt_regressor": lambda: DecisionTreeRegressor(maxDepth=5, **common),
        "linear_regression": lambda: LinearRegression(regParam=0.1, **common),
    }[name]()


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory):
    import pyarrow.parquet as pq
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    root = tmp_path_factory.mktemp("predictors")
    loaders = {"cancer": load_breast_cancer, "wine": load_wine, "diabetes": load_diabetes}
    out = {}
    for name, (dataset, classes, thresholds) in MODELS.items():
        pq.write_table(_table(loaders[dataset], classes, len(name), 0.0), root / f"{name}_train.parquet")
        table = _table(loaders[dataset], classes, len(name), 0.03)
        pq.write_table(table, root / f"{name}.parquet")
        df = spark.read.parquet(str(root / f"{name}_train.parquet"))
        assembler = VectorAssembler(inputCols=FEATURES, outputCol="features", handleInvalid="keep")
        fitted = Pipeline(stages=[assembler, _estimator(name)]).fit(df)
        if thresholds is not None:
            fitted.stages[-1].setThresholds(thresholds)
        fitted.write().save(str(root / name))
        import_pipeline(root / name, root / f"{name}_bundle")
        out[name] = (root, table)
    return out


def _spark_outputs(spark, root, name, outputs):
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array

    df = PipelineModel.load(str(root / name)).transform(spark.read.parquet(str(root / f"{name}.parquet")))
    columns = [vector_to_array(c).alias(c) if pa.types.is_list(t) else c for c, t in outputs.items()]
    return df.orderBy("id").select(*columns).toArrow()


@pytest.mark.parametrize("name", list(MODELS))
def test_predictor_gives_spark_s_outputs(spark, fitted, name):
    root, table = fitted[name]
    bundle = load_bundle(root / f"{name}_bundle")
    handler = handler_for(bundle, "cpu")
    handler.validate()
    batch = FeatureBatch(table, "cpu")
    apply_transforms(batch, bundle.transforms)
    ours = handler.run_inference(batch, handler.load_model())
    expected = _spark_outputs(spark, root, name, bundle.outputs)
    declared = bundle.parity.get("columns", {})
    assert set(ours) == set(bundle.outputs)
    for column in bundle.outputs:
        mine = ours[column]
        mine = np.asarray(mine.to_pylist() if isinstance(mine, pa.Array) else mine.numpy(), dtype=np.float64)
        theirs = np.asarray(expected.column(column).to_pylist(), dtype=np.float64)
        if column not in declared:
            assert np.array_equal(mine, theirs, equal_nan=True), f"{name}: {column} is not bit-identical"
            continue
        tolerance = declared[column]
        ulps = ulp_distance(mine.reshape(-1), theirs.reshape(-1), 64)
        both_nan = np.isnan(mine) & np.isnan(theirs)
        close = (np.abs(mine - theirs) <= tolerance.get("abs", 0.0)) | both_nan
        close = close.reshape(-1) | (ulps <= tolerance["ulps"])
        assert close.all(), f"{name}: {column} outside {tolerance}: max {ulps.max()} ulps"
