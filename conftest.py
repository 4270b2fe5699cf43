"""Session-wide engines for every test suite: one SparkSession and one local Ray per pytest run.

Starting either costs seconds on 2 CPUs, so tests share them; executors reuse a running session.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

# Spark's Python workers must run this interpreter (the venv), with this repo importable.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

# local[2,3]: two threads, each task tried up to 3 times (Spark's local mode retries nothing by default).
SPARK_TEST_MASTER = "local[2,3]"


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(SPARK_TEST_MASTER)
        .appName("batch-predict-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def ray_local():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def engines(spark, ray_local):
    """Both engines up, for tests that run a job on each backend."""
    return {"spark": spark, "ray": ray_local}
