"""Session-wide engines and backend parameters for every test suite.

One SparkSession and one local Ray per pytest run: starting either costs seconds on 2 CPUs, so
tests share them, and executors reuse a running session. The backends a test runs on come from
the registry (``common.spec.backends``), each with a pytest mark of its name (the Ibis way): a
test takes ``backend`` (every engine backend) or ``any_backend`` (the reference too), and a new
backend joins every such test by being registered.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

from common.spec.backends import backend_names, bundle_backend_names, engine_names

# Spark's Python workers must run this interpreter (the venv), with this repo importable.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def pytest_configure(config):
    for name in backend_names():
        config.addinivalue_line("markers", f"{name}: runs a job on the {name} backend")


def _params(names: list[str]) -> list:
    return [pytest.param(name, marks=getattr(pytest.mark, name)) for name in names]


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


@pytest.fixture(params=_params(engine_names()))
def backend(request, engines) -> str:
    """Each engine backend in turn (spark, ray), its engine already started."""
    return request.param


@pytest.fixture(params=_params(bundle_backend_names()))
def any_backend(request, engines) -> str:
    """Each backend that runs the bundle, in turn, the single-process reference included."""
    return request.param
