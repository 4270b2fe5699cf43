"""The Spark executor's input: exactly the files the driver inspected, as one DataFrame.

The driver has already listed the input files, settled the schema and, for a chunk of a resumable
run, chosen its row groups (``InputInfo``); Spark reads those and no others.
"""

from __future__ import annotations

import functools
import operator

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from common.run.chunks import row_ranges
from common.run.inputs import InputInfo


def read_input(session: SparkSession, inputs: InputInfo) -> DataFrame:
    """Reads exactly the files the driver inspected; CSV gets the schema inferred there. A chunk's
    row groups of a file are selected by Spark's row index in that file (``_metadata.row_index``)."""
    if inputs.format == "csv":
        schema = from_arrow_schema(inputs.schema, prefer_timestamp_ntz=True)
        return session.read.schema(schema).option("header", True).csv(inputs.paths)
    parts = inputs.partitions
    groups_of: dict[tuple, list[str]] = {}  # files by their partition values: one read each
    for path in inputs.whole_paths:
        groups_of.setdefault(parts.values[path] if parts else (), []).append(path)
    frames = [
        _with_partitions(session.read.parquet(*paths), inputs, paths[0]) for paths in groups_of.values()
    ]
    for file, groups in (inputs.row_groups or {}).items():
        index = F.col("_metadata.row_index")
        ranges = [(index >= start) & (index < end) for start, end in row_ranges(file, groups)]
        chunk = session.read.parquet(file).where(functools.reduce(operator.or_, ranges))
        frames.append(_with_partitions(chunk, inputs, file))
    return functools.reduce(DataFrame.unionByName, frames)


def _with_partitions(df: DataFrame, inputs: InputInfo, path: str) -> DataFrame:
    """The driver's partition values of ``path`` (``common.run.partitions``) as typed constant
    columns after the files' columns, where Spark's own discovery puts them."""
    if inputs.partitions is None:
        return df
    spark_types = from_arrow_schema(inputs.partitions.schema)
    for field, value in zip(spark_types.fields, inputs.partitions.values[path], strict=True):
        df = df.withColumn(field.name, F.lit(value).cast(field.dataType))
    return df
