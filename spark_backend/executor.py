"""Runs a job on Spark: read, transforms as Spark columns, model in an Arrow batch UDF, write Parquet.

The model is applied with ``mapInArrow`` (or ``mapInPandas`` when ``[spark] udf = "pandas"``): an
iterator-of-batches UDF whose Predictor is cached per Python worker, so the model loads once per
worker process, not per batch. Arrow batches hold the bundle's ``batch_size`` rows.
"""

from __future__ import annotations

import functools
import logging
import operator
import os
import sys
import time
import warnings
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from common.model.handler import resolve_device
from common.model.predictor import ErrorPolicy, Predictor, cached_predictor, error_policy
from common.run.chunks import row_ranges
from common.run.inputs import InputInfo
from common.run.output import scratch_dir
from common.run.result import EngineRun, note_device, noted_devices
from common.run.signals import engine_starting
from common.spec.bundle import Bundle
from common.spec.job import Job
from common.sql import SqlRuntimeError
from common.sql.spark_errors import ansi_error_class, sql_error_line
from spark_backend import engine
from spark_backend.settings import SparkSettings
from spark_backend.transforms import apply_transforms

# Settings the harness needs whatever the job says: UTC session time (time-zone transforms name
# their zone explicitly) and Arrow for the UDF.
_FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
# What a Spark Connect client may set on its session (the server owns the static settings).
_CONNECT_CONF = {"spark.sql.session.timeZone": "UTC"}


def get_session(settings: SparkSettings) -> tuple[SparkSession, float]:
    """The active SparkSession, or a new one from the settings; returns it and its start seconds.

    A new local or cluster session starts its driver JVM with ``spark_backend.engine``'s options
    (C1-only JIT, the venv's class-data-sharing archive, quiet logging, the JVM's output in a log
    file); ``[spark] remote`` connects to a running Spark Connect server instead.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        master = _master(active)
        if settings.remote or (master != settings.master and settings.master != SparkSettings.master):
            wanted = f"remote = {settings.remote}" if settings.remote else f"master = {settings.master}"
            warnings.warn(
                f"reusing the running Spark session on {master}; [spark] {wanted} is ignored", stacklevel=2
            )
        for key, value in {**_FIXED_CONF, **settings.conf}.items():
            _set_runtime_conf(active, key, str(value))
        return active, 0.0
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    started = time.perf_counter()
    if settings.remote:
        with engine_starting():
            session = SparkSession.builder.remote(settings.remote).getOrCreate()
            engine.own(session)
        for key, value in {**_CONNECT_CONF, **settings.conf}.items():
            _set_runtime_conf(session, key, str(value))
        return session, time.perf_counter() - started
    if settings.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no hostname lookup, and no warning about it
    conf = {
        "spark.master": settings.master,
        "spark.app.name": settings.app_name,
        "spark.ui.enabled": "false",
        **_FIXED_CONF,
        **{k: str(v) for k, v in settings.conf.items()},
    }
    conf["spark.driver.extraJavaOptions"] = " ".join(
        filter(None, [engine.driver_java_options(), conf.get("spark.driver.extraJavaOptions", "")])
    )
    if settings.task_gpus:
        conf.setdefault("spark.task.resource.gpu.amount", str(settings.task_gpus))
    # A signal waits until the session is whole and recorded (then stopped like any other), and
    # pyspark's SIGINT handler, which calls into the JVM from inside a call, is replaced by ours.
    with engine_starting():
        _, log = engine.launch_driver_jvm(conf)
        builder = SparkSession.builder
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except BaseException:
            engine.stop_driver_jvm()
            log.close(keep=True)
            raise
        engine.own(session, log)
    session.sparkContext.setLogLevel("ERROR")
    if settings.master.split("[")[0] != "local":  # executors in their own processes, maybe other machines
        session.sparkContext.addPyFile(str(_harness_archive()))
    return session, time.perf_counter() - started


def _master(session: SparkSession) -> str:
    """The session's master URL; a Spark Connect session has no SparkContext to ask."""
    try:
        return session.sparkContext.master
    except Exception:  # PySparkNotImplementedError on Spark Connect
        return "connect"


def _harness_archive() -> Path:
    """This harness's own packages (``common``, ``spark_backend``) in one zip for ``addPyFile``,
    so cluster executors run the driver's code: the nodes need the same Python, pyspark and the
    model libraries, not this package. The zip lives until the driver exits (Spark serves it)."""
    import atexit
    import shutil
    import tempfile
    import zipfile

    import common

    folder = Path(tempfile.mkdtemp(prefix="batch-predict-pyfiles-"))
    atexit.register(shutil.rmtree, folder, True)
    archive = folder / "batch_predict_harness.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in (Path(common.__file__).parent, Path(__file__).parent):
            for file in sorted(package.rglob("*.py")):
                zf.write(file, file.relative_to(package.parent))
    return archive


def _set_runtime_conf(session: SparkSession, key: str, value: str) -> None:
    if session.conf.get(key, None) == value:
        return
    try:
        session.conf.set(key, value)
    except Exception:  # static configs cannot change on a running session
        warnings.warn(
            f"Spark conf {key} cannot change on the running session; it keeps "
            f"{session.conf.get(key, None)!r}",
            stacklevel=2,
        )


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
        predictor = cached_predictor(bundle_path, False, passthrough, policy, task_device(wanted), threads)
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


def _quiet_query_context_loggers() -> None:
    """pyspark logs every query error as a JSON line on stderr before raising it; the runner
    reports the error itself, as one line."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL + 1)


def run(job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: SparkSettings) -> EngineRun:
    _quiet_query_context_loggers()
    session, startup = get_session(settings)
    _set_runtime_conf(session, "spark.sql.execution.arrow.maxRecordsPerBatch", str(bundle.batch_size))
    _set_runtime_conf(session, "spark.sql.ansi.enabled", "true" if bundle.sql_ansi else "false")
    df = read_input(session, inputs)
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
    return EngineRun(startup_seconds=startup, device=device, details={"master": _master(session)})
