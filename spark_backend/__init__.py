"""The Spark executor: transforms as Spark columns, the model in an Arrow batch UDF.

Importing this package does not import pyspark; running a job does (``spark_backend.executor``).
"""

from common.run.backends import EngineBackend
from spark_backend.settings import SparkSettings

BACKEND = EngineBackend(
    name="spark",
    settings_class=SparkSettings,
    executor="spark_backend.executor",
    engine="spark_backend.engine",
)
