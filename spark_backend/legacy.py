"""The ``legacy`` backend: the original Spark ML PipelineModel, run with ``PipelineModel.transform``.

It is today's production output, the side every imported bundle is proven against. It runs through
the same runner as every backend (checks, reconciliation, atomic publish, summary line) and writes
the same columns: the job's passthrough columns, then the bundle's outputs, with vector columns
(``rawPrediction``, ``probability``) as ``list<float64>``. Spark ML stages have no per-row error
handling, so ``on_error = "dead_letter"`` is refused rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.errors import BundleError, JobError
from common.result import EngineRun

NAME = "legacy"


def load_pipeline(path: Path):
    """The saved PipelineModel at ``path``; BundleError (one line) when Spark cannot load it."""
    from pyspark.ml import PipelineModel

    if not Path(path).is_dir():
        raise BundleError(f"legacy pipeline {path}: no such folder")
    try:
        return PipelineModel.load(str(path))
    except Exception as exc:  # Py4J and Spark raise many kinds; the first line names the cause
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"legacy pipeline {path}: Spark cannot load it: {first}") from None


def legacy_dataframe(
    df: DataFrame, pipeline, passthrough: Sequence[str], outputs: Mapping[str, pa.DataType]
) -> DataFrame:
    """``pipeline.transform(df)`` narrowed to the passthrough columns and the bundle's outputs,
    typed as the other backends write them."""
    transformed = pipeline.transform(df)
    present = set(transformed.columns)
    missing = [name for name in outputs if name not in present]
    if missing:
        raise BundleError(
            f'legacy pipeline does not write output column "{missing[0]}" declared by the bundle'
        )
    columns = [_col(name) for name in passthrough]
    columns += [_typed(_col(name), typ).alias(name) for name, typ in outputs.items()]
    return transformed.select(*columns)


def _typed(column: Column, typ: pa.DataType) -> Column:
    from pyspark.ml.functions import vector_to_array

    if pa.types.is_list(typ):  # a Spark ML vector -> array<double> with nullable elements, as Arrow writes
        return vector_to_array(column, "float64").cast(T.ArrayType(T.DoubleType(), True))
    if pa.types.is_string(typ):
        return column.cast("string")
    return column.cast("double")


def _col(name: str) -> Column:
    return F.col("`" + name.replace("`", "``") + "`")


def run(job, bundle, inputs, stage: Path, settings) -> EngineRun:
    """Runs the bundle's ``legacy_pipeline`` on the job's input into ``stage`` (Spark settings)."""
    from spark_backend.executor import get_session, read_input

    if bundle.legacy_pipeline is None:
        raise JobError(
            f"bundle {bundle.path} names no legacy_pipeline; the legacy backend runs that pipeline"
        )
    if job.on_error != "fail":
        raise JobError(
            f"{job.path}: the legacy backend runs the Spark ML pipeline as it is, which sets no failing rows aside; "
            'use on_error = "fail"'
        )
    session, startup = get_session(settings)
    pipeline = load_pipeline(bundle.legacy_pipeline)
    df = read_input(session, inputs)
    result = legacy_dataframe(df, pipeline, job.passthrough_columns, bundle.outputs)
    result.write.mode("errorifexists").parquet(str(stage))
    return EngineRun(
        startup_seconds=startup,
        device="cpu",
        details={"master": session.sparkContext.master, "pipeline": str(bundle.legacy_pipeline)},
    )
