"""The Spark executor: transforms as Spark columns, the model in an Arrow batch UDF.

Importing this package does not import pyspark; ``run`` does.
"""

from __future__ import annotations

from common.settings import parse_section
from spark_backend.settings import SparkSettings

NAME = "spark"


def parse_settings(section, where: str) -> SparkSettings:
    return parse_section(SparkSettings, section, where)


def run(job, bundle, inputs, stage, settings: SparkSettings):
    from spark_backend.executor import run as _run

    return _run(job, bundle, inputs, stage, settings)
