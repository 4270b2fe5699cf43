"""Builds the Spark ML pipeline example: a fraud PipelineModel trained in Spark, saved, then imported.

This is the migration's starting point: today's production artifact is a saved Spark ML
``PipelineModel`` (feature stages and a GBT classifier). ``build`` trains and saves it to
``pipeline/``, then runs ``batch-predict import-pipeline pipeline model`` so that ``model/`` is a
bundle naming it as ``legacy_pipeline``. The job scores with the bundle on Spark or Ray, or with
the original pipeline (``--backend legacy``); ``batch-predict parity`` compares them all.

    python -m examples.spark_pipeline.build [--size ROWS]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
# Derived columns as teams write them in Spark ML: a SQLTransformer over __THIS__.
SQL = (
    "SELECT *, hour(event_time) AS event_hour, CAST(coalesce(amount, 0) > 500 AS DOUBLE) AS big_amount "
    "FROM __THIS__"
)
LEGACY_PIPELINE = "pipeline"  # the saved PipelineModel's folder: a legacy side for parity and benchmarks
CATEGORIES = ["grocery", "travel", "electronics", "fashion", "gaming", "fuel", "pharmacy", "restaurants"]
COUNTRIES = ["DE", "FR", "US", "GB", "BR", "IN"]
CHANNELS = ["web", "app", "store"]


def generate(rows: int, seed: int, unseen: bool = False) -> pa.Table:
    """Card transactions with nulls, NaN and (``unseen``) categories training never saw."""
    rng = np.random.default_rng(seed)
    categories = CATEGORIES + (["crypto"] if unseen else [])
    amount = np.round(rng.lognormal(3.5, 1.2, rows), 2)
    category = rng.choice(categories, rows)
    country = rng.choice(COUNTRIES + (["ZZ"] if unseen else []), rows)
    channel = rng.choice(CHANNELS, rows)
    age = rng.integers(18, 90, rows).astype(np.int32)
    tenure = rng.exponential(400.0, rows)
    tenure[rng.random(rows) < 0.01] = np.nan
    seconds = rng.integers(0, 60 * 86400, rows) + np.datetime64("2026-03-01T00:00:00", "s").astype(np.int64)
    hour = (seconds // 3600) % 24
    logit = (
        0.9 * (np.log1p(amount) - 3.5)
        + 1.1 * np.isin(category, ["electronics", "gaming", "crypto"])
        + 0.8 * np.isin(country, ["BR", "ZZ"])
        + 0.6 * (channel == "web")
        + 0.8 * ((hour < 6) | (hour > 22))
        - 0.015 * (age - 45)
        - 0.001 * tenure
        - 1.5
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-np.nan_to_num(logit)))).astype(np.int64)
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "amount": pa.array(amount, mask=rng.random(rows) < 0.03),
            "merchant_category": pa.array(category, mask=rng.random(rows) < 0.02),
            "country": pa.array(country, mask=rng.random(rows) < 0.02),
            "channel": pa.array(channel),
            "age": pa.array(age, mask=rng.random(rows) < 0.03),
            "tenure_days": pa.array(tenure, mask=rng.random(rows) < 0.02),
            "event_time": pa.array(seconds * 1_000_000, type=pa.timestamp("us", tz="UTC")),
            "label": pa.array(label),
        }
    )


def train_pipeline(spark, train_path: Path):
    """The production pipeline as a Spark team writes it: derived columns in SQL, impute, index and
    one-hot encode, assemble, scale, and a gradient-boosted tree classifier."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.feature import (
        Imputer,
        OneHotEncoder,
        SQLTransformer,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )

    train = spark.read.parquet(str(train_path))
    strings = ["merchant_category", "country", "channel"]
    indexed = [f"{c}_idx" for c in strings]
    encoded = [f"{c}_vec" for c in strings]
    return Pipeline(
        stages=[
            SQLTransformer(statement=SQL),
            Imputer(
                inputCols=["amount", "tenure_days"],
                outputCols=["amount_filled", "tenure_filled"],
                strategy="median",
            ),
            Imputer(inputCols=["age"], outputCols=["age_filled"], strategy="mode"),
            StringIndexer(inputCols=strings, outputCols=indexed, handleInvalid="keep"),
            OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"),
            VectorAssembler(
                inputCols=[
                    "amount_filled",
                    "tenure_filled",
                    "age_filled",
                    "event_hour",
                    "big_amount",
                    *encoded,
                ],
                outputCol="raw_features",
                handleInvalid="keep",
            ),
            StandardScaler(inputCol="raw_features", outputCol="features", withMean=True, withStd=True),
            GBTClassifier(featuresCol="features", labelCol="label", maxIter=10, maxDepth=4, seed=7),
        ]
    ).fit(train)


def build(size: int | None = None, seed: int = 0, out_dir: Path | None = None) -> dict:
    """Writes ``data/input.parquet`` (``size`` rows), ``pipeline/`` (the saved PipelineModel) and
    ``model/`` (the bundle imported from it)."""
    from pyspark.sql import SparkSession

    from common.spark_ml_import import import_pipeline
    from spark_backend import engine
    from spark_backend.settings import SparkSettings

    out_dir = Path(out_dir or HERE)
    size = size or 5_000
    started = time.perf_counter()
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train_rows = min(20_000, max(2_000, 4 * size))  # tests build small: training costs Spark jobs
    # The session the executors start (UTC, quiet logs, no progress bar), or the running one.
    started_here = SparkSession.getActiveSession() is None
    spark, _ = engine.start(SparkSettings(app_name="spark_pipeline-build"))
    try:
        with tempfile.TemporaryDirectory() as scratch:  # data/ holds the scoring input alone
            pq.write_table(generate(train_rows, seed), Path(scratch) / "train.parquet")
            model = train_pipeline(spark, Path(scratch) / "train.parquet")
        model.write().overwrite().save(str(out_dir / LEGACY_PIPELINE))
    finally:
        if started_here:
            engine.stop()
    result = import_pipeline(out_dir / LEGACY_PIPELINE, out_dir / "model", overwrite=True)
    pq.write_table(generate(size, seed + 2, unseen=True).drop_columns(["label"]), data_dir / "input.parquet")
    return {
        "rows": size,
        "train_rows": train_rows,
        "seconds": round(time.perf_counter() - started, 2),
        "transforms": len(result.plan.transforms),
        "features": len(result.plan.features),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=None, help="rows to score (default 5000)")
    print(build(parser.parse_args().size))
