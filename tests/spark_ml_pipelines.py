"""Real Spark ML pipelines for the import tests, trained small on the session's Spark.

Each builder trains on data shipped with scikit-learn (breast cancer, diabetes, digits) or on a
generated fraud-like table (strings, nulls, NaN, unseen categories, timestamps), saves the fitted
PipelineModel and writes a scoring input (Parquet, key ``id``) with rows training never saw.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CATEGORIES = ["grocery", "travel", "electronics", "fashion", "gaming", "fuel", "pharmacy"]
COUNTRIES = ["DE", "FR", "US", "GB", "BR"]


@dataclass(frozen=True)
class Case:
    """A saved pipeline and the input to score with it."""

    name: str
    pipeline: Path
    input: Path


def _masked(values: np.ndarray, rng: np.random.Generator, share: float) -> pa.Array:
    return pa.array(values, mask=rng.random(len(values)) < share)


def fraud_table(rows: int, seed: int, unseen: bool) -> pa.Table:
    """Card transactions: amount (nulls), category and country strings (nulls; ``unseen`` adds
    values training never saw), age (int, nulls), tenure (float32, nulls and NaN), event time."""
    rng = np.random.default_rng(seed)
    categories = CATEGORIES + (["crypto", "lottery"] if unseen else [])
    countries = COUNTRIES + (["ZZ"] if unseen else [])
    amount = np.round(rng.lognormal(3.5, 1.2, rows), 2)
    category = rng.choice(categories, rows)
    country = rng.choice(countries, rows)
    age = rng.integers(18, 90, rows).astype(np.int32)
    tenure = rng.exponential(400.0, rows).astype(np.float32)
    if unseen:
        tenure[::97] = np.nan  # NaN, not null: Imputer treats both as missing
    seconds = rng.integers(0, 60 * 86400, rows)
    start = int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp())
    hour = (seconds // 3600) % 24
    risk = (
        0.9 * (np.log1p(amount) - 3.5)
        + 1.2 * np.isin(category, ["electronics", "gaming", "crypto"])
        + 0.8 * (country == "BR")
        + 0.7 * ((hour < 6) | (hour > 22))
        - 0.01 * (age - 40)
        - 0.001 * tenure
        + rng.normal(0, 1.0, rows)
    )
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "amount": _masked(amount, rng, 0.05),
            "merchant_category": _masked(category, rng, 0.03),
            "country": _masked(country, rng, 0.03),
            "age": _masked(age, rng, 0.05),
            "tenure_days": _masked(tenure, rng, 0.05),
            "event_time": pa.array((start + seconds) * 1_000_000, type=pa.timestamp("us", tz="UTC")),
            "label": pa.array((np.nan_to_num(risk) > 1.0).astype(np.int64)),
        }
    )


def _sklearn_table(loader, rows: int | None = None, seed: int = 0, noise: float = 0.0) -> pa.Table:
    data = loader()
    x, y = np.asarray(data.data, dtype=np.float64), np.asarray(data.target)
    if rows is not None:  # more rows for scoring: resampled, with a little noise
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(x), rows)
        x = x[pick] * (1 + noise * rng.normal(size=x[pick].shape))
        y = y[pick]
    names = [f"f{i}" for i in range(x.shape[1])]
    columns = {"id": pa.array(np.arange(len(x), dtype=np.int64))}
    columns.update({name: pa.array(x[:, i]) for i, name in enumerate(names)})
    columns["label"] = pa.array(y.astype(np.float64))
    return pa.table(columns)


def _save(spark, table: pa.Table, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return spark.read.parquet(str(path))


def gbt_breast_cancer(spark, root: Path) -> Case:
    """GBT classifier on breast cancer: a StringIndexer'd band (a categorical split), a fitted
    QuantileDiscretizer (a Bucketizer), a VectorAssembler."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.feature import QuantileDiscretizer, SQLTransformer, StringIndexer, VectorAssembler
    from sklearn.datasets import load_breast_cancer

    band = "CASE WHEN f0 < 12 THEN 'small' WHEN f0 < 16 THEN 'medium' ELSE 'large' END"
    train = _save(spark, _sklearn_table(load_breast_cancer), root / "train_bc.parquet")
    train = SQLTransformer(statement=f"SELECT *, {band} AS band FROM __THIS__").transform(train)
    features = [f"f{i}" for i in range(10)]
    model = Pipeline(
        stages=[
            StringIndexer(inputCol="band", outputCol="band_idx", stringOrderType="alphabetAsc"),
            QuantileDiscretizer(inputCol="f12", outputCol="area_bucket", numBuckets=4, handleInvalid="keep"),
            VectorAssembler(inputCols=[*features, "band_idx", "area_bucket"], outputCol="features"),
            GBTClassifier(featuresCol="features", labelCol="label", maxIter=6, maxDepth=3, seed=1),
        ]
    ).fit(train)
    scoring = _sklearn_table(load_breast_cancer, rows=3000, seed=2, noise=0.05)
    band_values = np.where(
        np.asarray(scoring.column("f0")) < 12,
        "small",
        np.where(np.asarray(scoring.column("f0")) < 16, "medium", "large"),
    )
    scoring = scoring.append_column("band", pa.array(band_values))
    f12 = np.asarray(scoring.column("f12")).copy()
    f12[::50] = np.nan  # the discretizer keeps NaN in an extra bucket
    scoring = scoring.set_column(scoring.schema.get_field_index("f12"), "f12", pa.array(f12))
    return _finish(spark, root, "gbt_breast_cancer", model, scoring)


def rf_diabetes(spark, root: Path) -> Case:
    """Random-forest regressor on diabetes: Imputer (median) on injected nulls, Binarizer,
    Bucketizer (splitsArray, keep), VectorAssembler (keep), MinMaxScaler, MaxAbsScaler."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Binarizer, Bucketizer, Imputer, MaxAbsScaler, MinMaxScaler, VectorAssembler
    from pyspark.ml.regression import RandomForestRegressor
    from sklearn.datasets import load_diabetes

    def with_gaps(table: pa.Table, seed: int) -> pa.Table:
        rng = np.random.default_rng(seed)
        bmi = np.asarray(table.column("f2"))
        return table.set_column(table.schema.get_field_index("f2"), "f2", _masked(bmi, rng, 0.08))

    train = _save(spark, with_gaps(_sklearn_table(load_diabetes), 3), root / "train_diabetes.parquet")
    inf = float("inf")
    model = Pipeline(
        stages=[
            Imputer(inputCols=["f2"], outputCols=["bmi"], strategy="median"),
            Binarizer(inputCol="f1", outputCol="sex_bin", threshold=0.0),
            Bucketizer(
                inputCols=["f0", "f3"],
                outputCols=["age_band", "bp_band"],
                handleInvalid="keep",
                splitsArray=[[-inf, -0.04, 0.0, 0.04, inf], [-inf, -0.02, 0.0, 0.02, inf]],
            ),
            VectorAssembler(
                inputCols=["bmi", "sex_bin", "age_band", "bp_band", "f4", "f5", "f6", "f7", "f8", "f9"],
                outputCol="raw_features",
                handleInvalid="keep",
            ),
            MinMaxScaler(inputCol="raw_features", outputCol="unit_features"),
            MaxAbsScaler(inputCol="unit_features", outputCol="features"),
            RandomForestRegressor(featuresCol="features", labelCol="label", numTrees=8, maxDepth=5, seed=2),
        ]
    ).fit(train)
    scoring = with_gaps(_sklearn_table(load_diabetes, rows=3000, seed=4, noise=0.1), 5)
    f0 = np.asarray(scoring.column("f0")).copy()
    f0[::40] = np.nan  # Bucketizer keep: NaN gets the extra bucket
    f0[1::40] = -0.0  # -0.0 sorts below the 0.0 split in Java's binary search
    scoring = scoring.set_column(0 + scoring.schema.get_field_index("f0"), "f0", pa.array(f0))
    return _finish(spark, root, "rf_diabetes", model, scoring)


def lr_digits(spark, root: Path) -> Case:
    """Multinomial logistic regression on digits (sparse assembled vectors), ElementwiseProduct,
    IndexToString on the prediction."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import ElementwiseProduct, IndexToString, VectorAssembler
    from pyspark.ml.linalg import Vectors
    from sklearn.datasets import load_digits

    train = _save(spark, _sklearn_table(load_digits), root / "train_digits.parquet")
    pixels = [f"f{i}" for i in range(64)]
    model = Pipeline(
        stages=[
            VectorAssembler(inputCols=pixels, outputCol="pixels"),
            ElementwiseProduct(
                inputCol="pixels", outputCol="features", scalingVec=Vectors.dense([1 / 16] * 64)
            ),
            LogisticRegression(
                featuresCol="features", labelCol="label", family="multinomial", maxIter=15, regParam=0.01
            ),
            IndexToString(inputCol="prediction", outputCol="digit", labels=[f"digit {i}" for i in range(10)]),
        ]
    ).fit(train)
    scoring = _sklearn_table(load_digits, rows=3000, seed=6, noise=0.0)
    return _finish(spark, root, "lr_digits", model, scoring)


def fraud_pipeline(spark, root: Path, with_sql: bool = True) -> Case:
    """Binary logistic regression (threshold 0.3) on the fraud table: SQLTransformer (event hour),
    Imputer (mean and mode), StringIndexer (keep) + OneHotEncoder, VectorAssembler (keep),
    StandardScaler (withMean)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import (
        Imputer,
        OneHotEncoder,
        SQLTransformer,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )

    train = _save(spark, fraud_table(4000, seed=7, unseen=False), root / "train_fraud.parquet")
    stages = []
    hour = ["event_hour"] if with_sql else []
    if with_sql:
        stages.append(SQLTransformer(statement="SELECT *, hour(event_time) AS event_hour FROM __THIS__"))
    stages += [
        Imputer(
            inputCols=["amount", "tenure_days"],
            outputCols=["amount_filled", "tenure_filled"],
            strategy="mean",
        ),
        Imputer(inputCols=["age"], outputCols=["age_filled"], strategy="mode"),
        StringIndexer(
            inputCols=["merchant_category", "country"],
            outputCols=["category_idx", "country_idx"],
            handleInvalid="keep",
            stringOrderType="frequencyDesc",
        ),
        OneHotEncoder(
            inputCols=["category_idx", "country_idx"],
            outputCols=["category_vec", "country_vec"],
            handleInvalid="keep",
            dropLast=True,
        ),
        VectorAssembler(
            inputCols=["amount_filled", "tenure_filled", "age_filled", *hour, "category_vec", "country_vec"],
            outputCol="raw_features",
            handleInvalid="keep",
        ),
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=True, withStd=True),
        LogisticRegression(featuresCol="features", labelCol="label", maxIter=20, threshold=0.3),
    ]
    model = Pipeline(stages=stages).fit(train)
    return _finish(
        spark, root, "fraud" if with_sql else "fraud_nosql", model, fraud_table(5000, seed=8, unseen=True)
    )


def _finish(spark, root: Path, name: str, model, scoring: pa.Table) -> Case:
    pipeline = root / name / "pipeline"
    model.write().overwrite().save(str(pipeline))
    path = root / name / "input.parquet"
    pq.write_table(scoring, path)
    return Case(name, pipeline, path)
