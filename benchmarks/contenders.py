"""The contenders: our two executors, the ceiling, and three pipelines users write by hand.

Every contender applies the same bundle to the same input files and writes Parquet with the same
columns (the job's key and passthrough columns, then the model's outputs), at the bundle's batch
size, so only the way the model is run differs:

- ``spark``, ``ray``: our executors, through ``common.run.runner.run_job`` (as ``batch-predict run``).
- ``ceiling``: no engine. One process per CPU, each reads whole files with pyarrow, runs the
  ``Predictor`` (transforms and model, one torch thread) and writes Parquet: what this machine can
  do with this bundle. On a CUDA machine it is one process that owns the GPU.
- ``spark_pandas_udf``: preprocessing as Spark columns, then a scalar pandas UDF that loads the
  model for every batch (the most common hand-written Spark job).
- ``spark_predict_batch_udf``: Spark's own ``pyspark.ml.functions.predict_batch_udf`` (the model
  is cached per Python worker by Spark).
- ``ray_map_batches``: ``read_parquet().map_batches(fn)`` with a plain function that loads the
  model for every batch (Ray Data's first example, before one learns about callable classes).
- ``legacy``: for a workload imported from a Spark ML pipeline only, the original
  ``PipelineModel.transform`` on Spark, through the runner (``--backend legacy``): what the
  imported bundle replaces.

Each contender's ``start()`` starts its engine and returns the seconds it took (0 when this
process already runs it); ``run()`` scores one input folder into one output folder.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.model.predictor import Predictor
from common.spec.bundle import Bundle, load_bundle
from common.spec.job import Job
from common.spec.transforms import required_input_columns

EXECUTORS = ("spark", "ray")
HAND_WRITTEN = ("spark_pandas_udf", "spark_predict_batch_udf", "ray_map_batches")
RELOADING = ("spark_pandas_udf", "ray_map_batches")  # load the model on every batch
LEGACY = "legacy"  # the original Spark ML pipeline of an imported workload
ALL = ("spark", "ray", "ceiling", *HAND_WRITTEN, LEGACY)
ENGINE = {
    "spark": "spark",
    "ray": "ray",
    "ceiling": "ceiling",
    "spark_pandas_udf": "spark",
    "spark_predict_batch_udf": "spark",
    "ray_map_batches": "ray",
    LEGACY: "spark",
}


def role(name: str) -> str:
    if name == LEGACY:
        return "original pipeline"
    return "executor" if name in EXECUTORS else "ceiling" if name == "ceiling" else "hand-written"


def applies(name: str, workload: str) -> bool:
    """Whether contender ``name`` runs on ``workload``: ``legacy`` only where the workload's build
    saves a Spark ML pipeline (its ``LEGACY_PIPELINE``), every other contender everywhere."""
    from benchmarks.workloads import legacy_pipeline

    return name != LEGACY or legacy_pipeline(workload) is not None


@dataclass(frozen=True)
class RunTiming:
    """One run. ``seconds``: the whole call; ``engine_seconds``: read, predict and write only (for
    our executors, without the runner's key checks, model preflight and manifest)."""

    seconds: float
    engine_seconds: float


class Contender:
    """Base: holds the job and bundle; subclasses start an engine and run one input folder."""

    name = ""

    def __init__(self, job: Job, bundle: Bundle):
        self.job = job
        self.bundle = bundle
        self.passthrough = list(job.passthrough_columns)
        self.columns = list(
            dict.fromkeys([*self.passthrough, *required_input_columns(bundle.transforms, bundle.features)])
        )

    def start(self) -> float:
        raise NotImplementedError

    def run(self, input_dir: Path, output_dir: Path) -> RunTiming:
        raise NotImplementedError

    def stop(self) -> None:
        """Stops what ``start`` started (engines shared by contenders are stopped by the trial)."""

    def device(self) -> str:
        from common.model.handler import resolve_device

        return resolve_device(self.bundle.device)


def _spark_session(job: Job):
    from spark_backend import engine

    return engine.start(job.backend_settings("spark"))


def _start_ray(job: Job) -> float:
    from ray_backend import engine

    return engine.start(job.backend_settings("ray"))


class Executor(Contender):
    """Our executor on ``name`` (``spark`` or ``ray``, or ``legacy`` on Spark), run as the CLI runs it."""

    def __init__(self, name: str, job: Job, bundle: Bundle):
        super().__init__(job, bundle)
        self.name = name

    def start(self) -> float:
        return _spark_session(self.job)[1] if ENGINE[self.name] == "spark" else _start_ray(self.job)

    def run(self, input_dir: Path, output_dir: Path) -> RunTiming:
        from common.run.runner import run_job

        job = replace(self.job.with_paths(input_dir, output_dir), overwrite=True)
        started = time.perf_counter()
        result = run_job(job, self.name)
        seconds = time.perf_counter() - started
        return RunTiming(seconds, result.engine_seconds - result.startup_seconds)


# ---------------------------------------------------------------------------------------------
# The ceiling: a process pool, no engine.

_POOL_PREDICTOR: Predictor | None = None


def _pool_init(bundle_path: str, passthrough: tuple[str, ...], threads: int) -> None:
    import torch

    global _POOL_PREDICTOR
    torch.set_num_threads(threads)
    _POOL_PREDICTOR = Predictor(load_bundle(bundle_path), run_transforms=True, passthrough=passthrough)
    _ = _POOL_PREDICTOR.model


def _pool_ready(_: int) -> int:
    time.sleep(0.2)  # long enough that every worker takes one
    return os.getpid()


def _pool_score(task: tuple[str, str, list[str], int]) -> int:
    source, target, columns, batch_size = task
    assert _POOL_PREDICTOR is not None
    reader = pq.ParquetFile(source)
    schema = _POOL_PREDICTOR.result_schema(reader.schema_arrow)
    rows = 0
    with pq.ParquetWriter(target, schema) as writer:
        for batch in reader.iter_batches(batch_size=batch_size, columns=columns):
            writer.write_table(_POOL_PREDICTOR.predict(batch))
            rows += batch.num_rows
    return rows


class Ceiling(Contender):
    """One process per CPU (one torch thread each), files spread over them; one process on CUDA."""

    name = "ceiling"

    def __init__(self, job: Job, bundle: Bundle, processes: int | None = None):
        super().__init__(job, bundle)
        cpus = os.cpu_count() or 1
        on_gpu = self.device() == "cuda"
        self.processes = processes or (1 if on_gpu else cpus)
        self.threads = cpus if on_gpu else 1
        self.pool = None

    def start(self) -> float:
        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")  # no fork after torch and OpenMP started
        self.pool = context.Pool(
            self.processes, _pool_init, (str(self.bundle.path), tuple(self.passthrough), self.threads)
        )
        for _ in range(10):  # every worker has loaded the model once it has answered
            if len(set(self.pool.map(_pool_ready, range(2 * self.processes), chunksize=1))) == self.processes:
                break
        return time.perf_counter() - started

    def run(self, input_dir: Path, output_dir: Path) -> RunTiming:
        started = time.perf_counter()
        output_dir.mkdir(parents=True, exist_ok=True)
        files = sorted(input_dir.glob("*.parquet"))
        tasks = [(str(f), str(output_dir / f.name), self.columns, self.bundle.batch_size) for f in files]
        list(self.pool.imap_unordered(_pool_score, tasks, chunksize=1))
        seconds = time.perf_counter() - started
        return RunTiming(seconds, seconds)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


# ---------------------------------------------------------------------------------------------
# What users write by hand.


def _spark_features(session, input_dir: Path, bundle: Bundle, passthrough: list[str]):
    """Reads the input and prepares the features as Spark columns, as a Spark user would."""
    from spark_backend.transforms import apply_transforms

    df = apply_transforms(session.read.parquet(str(input_dir)), bundle.transforms)
    return df.select(*dict.fromkeys([*passthrough, *bundle.features]))


def _outputs_struct(bundle: Bundle):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(bundle.outputs_schema, prefer_timestamp_ntz=True)


class SparkHandWritten(Contender):
    """Shared by the two hand-written Spark jobs: session, Arrow batch size, write."""

    def start(self) -> float:
        session, seconds = _spark_session(self.job)
        session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(self.bundle.batch_size))
        self.session = session
        return seconds

    def model_column(self, input_dir: Path):
        raise NotImplementedError

    def run(self, input_dir: Path, output_dir: Path) -> RunTiming:
        started = time.perf_counter()
        df = _spark_features(self.session, input_dir, self.bundle, self.passthrough)
        scored = df.select(
            *self.passthrough, self.model_column(input_dir)(*self.bundle.features).alias("prediction")
        )
        scored.select(*self.passthrough, "prediction.*").write.mode("overwrite").parquet(str(output_dir))
        seconds = time.perf_counter() - started
        return RunTiming(seconds, seconds)


class SparkPandasUdf(SparkHandWritten):
    """A scalar pandas UDF over the feature columns that loads the model on every batch."""

    name = "spark_pandas_udf"

    def model_column(self, input_dir: Path):
        import pandas as pd
        from pyspark.sql.functions import pandas_udf

        bundle_path, features = str(self.bundle.path), list(self.bundle.features)

        def predict(*columns):
            predictor = Predictor(load_bundle(bundle_path), run_transforms=False)  # loads the model again
            table = pa.Table.from_arrays([pa.Array.from_pandas(c) for c in columns], names=features)
            return predictor.predict(table).to_pandas()

        # Series, Series, ... -> DataFrame: a scalar pandas UDF returning a struct.
        return pandas_udf(
            with_arity(predict, len(features), pd.Series, pd.DataFrame), _outputs_struct(self.bundle)
        )


class SparkPredictBatchUdf(SparkHandWritten):
    """``pyspark.ml.functions.predict_batch_udf``: the model is made once per Python worker."""

    name = "spark_predict_batch_udf"

    def model_column(self, input_dir: Path):
        from pyspark.ml.functions import predict_batch_udf

        bundle_path, features = str(self.bundle.path), list(self.bundle.features)
        names = list(self.bundle.outputs)

        def make_predict_fn():
            predictor = Predictor(load_bundle(bundle_path), run_transforms=False)
            _ = predictor.model

            def predict(*arrays):
                table = pa.Table.from_arrays([_numpy_to_arrow(a) for a in arrays], names=features)
                out = predictor.predict(table)
                return {name: _for_predict_batch_udf(out.column(name)) for name in names}

            # predict_batch_udf passes one array per input column when the function takes as many
            # parameters, so give it a signature with one parameter per feature.
            return with_arity(predict, len(features))

        return predict_batch_udf(
            make_predict_fn,
            return_type=_outputs_struct(self.bundle),
            batch_size=self.bundle.batch_size,
            input_tensor_shapes=self._tensor_shapes(input_dir),
        )

    def _tensor_shapes(self, input_dir: Path):
        """``{i: [n]}`` for each list-valued feature (predict_batch_udf needs it to stack the rows)."""
        raw = [
            (i, name)
            for i, name in enumerate(self.bundle.features)
            if name not in self.bundle.transform_outputs
        ]
        if not raw:
            return None
        first = next(
            pq.ParquetFile(sorted(input_dir.glob("*.parquet"))[0]).iter_batches(
                batch_size=1, columns=[n for _, n in raw]
            )
        )
        shapes = {}
        for index, name in raw:
            column = first.column(name)
            if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
                shapes[index] = [len(column[0].as_py())]
        return shapes or None


def _for_predict_batch_udf(column: pa.ChunkedArray):
    """An output column as ``predict_batch_udf`` takes it: a 2-D array for a list column (its
    ArrayType fields must be two-dimensional), a 1-D array otherwise."""
    import numpy as np

    values = column.to_numpy(zero_copy_only=False)
    return np.stack(values) if pa.types.is_list(column.type) else values


def with_arity(function, count: int, annotation=inspect.Parameter.empty, returns=inspect.Signature.empty):
    """``function(*args)`` with a signature of ``count`` named parameters, which Spark inspects."""
    params = [
        inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
        for i in range(count)
    ]
    function.__signature__ = inspect.Signature(params, return_annotation=returns)
    if annotation is not inspect.Parameter.empty:
        function.__annotations__ = {**{p.name: annotation for p in params}, "return": returns}
    return function


def _numpy_to_arrow(array) -> pa.Array:
    """One input of predict_batch_udf back to Arrow: a 2-D array becomes a fixed-size list column."""
    if array.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])
    return pa.array(array, from_pandas=array.dtype == object)


class RayMapBatches(Contender):
    """``map_batches`` with a plain function that loads the model on every batch (Ray tasks)."""

    name = "ray_map_batches"

    def start(self) -> float:
        return _start_ray(self.job)

    def run(self, input_dir: Path, output_dir: Path) -> RunTiming:
        import ray

        bundle_path, passthrough = str(self.bundle.path), tuple(self.passthrough)

        def predict(batch: pa.Table) -> pa.Table:
            return Predictor(load_bundle(bundle_path), passthrough=passthrough).predict(
                batch
            )  # loads the model again

        started = time.perf_counter()
        ds = ray.data.read_parquet(str(input_dir), columns=self.columns)
        ds = ds.map_batches(predict, batch_size=self.bundle.batch_size, batch_format="pyarrow")
        ds.write_parquet(str(output_dir))
        seconds = time.perf_counter() - started
        return RunTiming(seconds, seconds)


def make(name: str, job: Job, bundle: Bundle) -> Contender:
    """The contender called ``name``; ValueError lists the valid names."""
    if name in (*EXECUTORS, LEGACY):
        return Executor(name, job, bundle)
    classes = {
        "ceiling": Ceiling,
        "spark_pandas_udf": SparkPandasUdf,
        "spark_predict_batch_udf": SparkPredictBatchUdf,
        "ray_map_batches": RayMapBatches,
    }
    if name not in classes:
        raise ValueError(f'unknown contender "{name}"; valid: {", ".join(ALL)}')
    return classes[name](job, bundle)
