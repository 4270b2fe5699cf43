"""The ``legacy`` backend: the original Spark ML PipelineModel, run with ``PipelineModel.transform``.

It is today's production output, the side an imported bundle is proven against
(``batch-predict import-pipeline`` writes ``legacy_pipeline`` into the bundle). It runs through the
same runner as every backend (checks, reconciliation, atomic publish, summary line) and writes
the same columns: the job's passthrough columns, then the bundle's outputs, with vector columns
(``rawPrediction``, ``probability``) as ``list<float64>``. It runs on the Spark of the job's
``[spark]`` section. Spark ML stages set no failing row aside, so ``on_error = "dead_letter"`` is
refused rather than silently ignored. Importing this module does not import pyspark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from common.errors import BundleError, JobError
from common.run.backends import EngineBackend
from common.run.result import EngineRun
from common.spec.backends import LEGACY


@dataclass(frozen=True)
class LegacySettings:
    """``[legacy]`` has no fields: the legacy side runs on the ``[spark]`` section's Spark."""


BACKEND = EngineBackend(
    name=LEGACY, settings_class=LegacySettings, executor="spark_backend.legacy", engine="spark_backend.engine"
)


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


def legacy_dataframe(df, pipeline, passthrough: Sequence[str], outputs: Mapping[str, pa.DataType]):
    """``pipeline.transform(df)`` narrowed to the passthrough columns and the bundle's outputs,
    typed as the other backends write them."""
    transformed = pipeline.transform(df)
    missing = [name for name in outputs if name not in transformed.columns]
    if missing:
        raise BundleError(f'legacy pipeline writes no column "{missing[0]}", which the bundle declares')
    columns = [_col(name) for name in passthrough]
    columns += [_typed(_col(name), typ).alias(name) for name, typ in outputs.items()]
    return transformed.select(*columns)


def _typed(column, typ: pa.DataType):
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import types as T

    if pa.types.is_list(typ):  # a Spark ML vector -> array<double>, elements nullable as Arrow writes
        return vector_to_array(column, "float64").cast(T.ArrayType(T.DoubleType(), True))
    if pa.types.is_string(typ):
        return column.cast("string")
    return column.cast("double")


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def run(job, bundle, inputs, stage: Path, settings: LegacySettings) -> EngineRun:
    """Runs the bundle's ``legacy_pipeline`` on the job's input and writes Parquet into ``stage``."""
    from spark_backend import engine, reading

    if bundle.legacy_pipeline is None:
        raise JobError(f"bundle {bundle.path} names no legacy_pipeline, which the legacy backend runs")
    if job.on_error != "fail":
        raise JobError(
            f"{job.path}: the legacy backend runs the Spark ML pipeline as it is and sets no failing "
            'row aside; use on_error = "fail"'
        )
    session, startup = engine.start(job.backend_settings("spark"))
    # A SQLTransformer runs under the session's ANSI mode: the one the bundle's sql transforms declare.
    engine.set_runtime_conf(session, "spark.sql.ansi.enabled", "true" if bundle.sql_ansi else "false")
    pipeline = load_pipeline(bundle.legacy_pipeline)
    result = legacy_dataframe(
        reading.read_input(session, inputs), pipeline, job.passthrough_columns, bundle.outputs
    )
    result.write.parquet(str(stage))  # the default mode: fail if the staging folder exists
    details = {"master": session.sparkContext.master, "pipeline": str(bundle.legacy_pipeline)}
    return EngineRun(startup_seconds=startup, device="cpu", details=details)
