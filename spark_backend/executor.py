"""Runs a job on Spark: read, transforms as Spark columns, model in an Arrow batch UDF, write Parquet.

The model is applied with ``mapInArrow`` (or ``mapInPandas`` when ``[spark] udf = "pandas"``): an
iterator-of-batches UDF whose Predictor is cached per Python worker, so the model loads once per
worker process, not per batch. Arrow batches hold the bundle's ``batch_size`` rows.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from common.model.handler import resolve_device
from common.model.predictor import ErrorPolicy, Predictor, cached_predictor, error_policy
from common.run.inputs import InputInfo
from common.run.output import scratch_dir
from common.run.result import EngineRun, note_device, noted_devices
from common.spec.bundle import Bundle
from common.spec.job import Job
from common.sql import SqlRuntimeError
from common.sql.spark_errors import ansi_error_class, sql_error_line
from spark_backend import engine, reading
from spark_backend.settings import SparkSettings
from spark_backend.transforms import apply_transforms


def predict_dataframe(
    df: DataFrame,
    bundle: Bundle,
    passthrough: tuple[str, ...],
    udf: str = "arrow",
    policy: ErrorPolicy = ErrorPolicy(),
    device_log: str | None = None,
) -> DataFrame:
    """Applies the bundle's transforms as Spark columns, then the model in a batch UDF that runs
    ``Predictor.run_batch`` (the job's error policy; a failed task is retried by Spark). Each
    worker notes its model's device in ``device_log`` (``common.run.result.note_device``)."""
    df = apply_transforms(df, bundle.transforms)
    needed = list(dict.fromkeys([*passthrough, *bundle.features]))
    df = df.select(*needed)
    probe = Predictor(bundle, run_transforms=False, passthrough=passthrough, policy=policy)
    # Spark's own type mapping, not a Spark job (limit(0).toArrow() cost 870 ms cold per run).
    timezone = df.sparkSession.conf.get("spark.sql.session.timeZone", "UTC")
    in_schema = (
        to_arrow_schema(df.select(*passthrough).schema, timezone=timezone) if passthrough else pa.schema([])
    )
    out_schema = from_arrow_schema(probe.engine_schema(in_schema), prefer_timestamp_ntz=True)
    bundle_path, wanted = str(bundle.path), bundle.device
    threads = int(df.sparkSession.conf.get("spark.task.cpus", "1"))

    def worker_predictor():
        predictor = cached_predictor(
            bundle_path,
            run_transforms=False,
            passthrough=passthrough,
            policy=policy,
            device=task_device(wanted),
            threads=threads,
        )
        note_device(device_log, predictor.device)
        return predictor

    if udf == "pandas":

        def predict_pandas(frames):
            predictor = worker_predictor()
            for frame in frames:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                yield predictor.run_batch(table).to_pandas()

        return df.mapInPandas(predict_pandas, out_schema)

    def predict_arrow(batches):
        predictor = worker_predictor()
        for batch in batches:
            yield from predictor.run_batch(batch).to_batches()

    return df.mapInArrow(predict_arrow, out_schema)


def task_device(wanted: str, context=None) -> str:
    """The device for the model in this Spark task: GPU use follows Spark's resource scheduling.

    A task that Spark gave a GPU (``spark.task.resource.gpu.amount``) runs the model on that GPU,
    ``cuda:<address>``, unless the bundle says ``cpu``; a task without one runs on the CPU, so
    concurrent tasks never pile onto a GPU that Spark did not hand out. ``device = "cuda"``
    without a GPU from Spark is an error, as on any machine without CUDA.
    """
    if context is None:
        from pyspark import TaskContext

        context = TaskContext.get()
    gpus = context.resources().get("gpu") if context is not None else None
    if wanted != "cpu" and gpus is not None and gpus.addresses:
        return f"cuda:{gpus.addresses[0]}"
    return "cpu" if wanted == "auto" else resolve_device(wanted)


def run(job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: SparkSettings) -> EngineRun:
    """``Backend.run`` on Spark, shaped as ``ray_backend.executor.run``: the engine
    (``engine.start``), the input (``reading.read_input``), the bundle (``predict_dataframe``),
    then Parquet into ``stage``."""
    engine.quiet_loggers()
    session, startup = engine.start(settings)
    engine.set_runtime_conf(session, "spark.sql.execution.arrow.maxRecordsPerBatch", str(bundle.batch_size))
    engine.set_runtime_conf(session, "spark.sql.ansi.enabled", "true" if bundle.sql_ansi else "false")
    df = reading.read_input(session, inputs)
    policy = error_policy(job, scratch_dir(stage))
    devices = scratch_dir(stage) / "devices"
    result = predict_dataframe(df, bundle, job.passthrough_columns, settings.udf, policy, str(devices))
    try:
        result.write.parquet(str(stage))  # the default mode: fail if it exists (Connect rejects its name)
    except Exception as exc:  # an ANSI error in a sql transform: the compiled side's one line
        sql = [(t.output, t.params["expr"]) for t in bundle.transforms if t.op == "sql"]
        line = sql_error_line(exc, sql)
        if line is None:
            raise
        raise SqlRuntimeError(line, ansi_error_class(exc) or "") from None
    gpus = float(session.conf.get("spark.task.resource.gpu.amount", "0") or 0)
    device = noted_devices(
        devices, "cpu" if bundle.device == "cpu" or not gpus else resolve_device(bundle.device)
    )
    return EngineRun(startup_seconds=startup, device=device, details={"master": engine.master_url(session)})
