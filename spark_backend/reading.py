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
    frames = [session.read.parquet(*inputs.whole_paths)] if inputs.whole_paths else []
    for file, groups in (inputs.row_groups or {}).items():
        index = F.col("_metadata.row_index")
        ranges = [(index >= start) & (index < end) for start, end in row_ranges(file, groups)]
        frames.append(session.read.parquet(file).where(functools.reduce(operator.or_, ranges)))
    return functools.reduce(DataFrame.unionByName, frames)
