"""Runs one job on one backend: validate everything, run the engine into a staging folder,
reconcile rows and keys, publish atomically. Shared by the CLI, the parity runner and the tests.

Guarantees (see README.md, "Guarantees"): every input row is published exactly once, or set aside in
``_dead_letter`` with its error, or the job fails and publishes nothing; every error reaches the
user as one ``BatchPredictError`` line, also when it was raised inside a Spark or Ray worker.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import BatchPredictError, InputError, JobError
from common.model.features import FeatureBatch
from common.model.kinds import handler_class, pin_remote_model
from common.model.predictor import ErrorPolicy, Predictor
from common.model.transform_ops import apply_transforms
from common.run.backends import get_backend
from common.run.chunks import ChunkManifest, find_resumable, plan_chunks, run_chunks, run_identity
from common.run.dead_letter import (
    DEAD_LETTER_ERROR,
    check_dead_letter_share,
    check_preflight_rows,
    dead_letter_files,
    split_dead_letters,
)
from common.run.engines import EngineSession
from common.run.input_checks import check_portable_input
from common.run.inputs import InputInfo, inspect_input, read_parquet_columns
from common.run.output import finish_output, output_files, staged_output
from common.run.path_safety import check_output_paths, check_output_spares
from common.run.progress import Progress
from common.run.reconcile import check_input_keys, reconcile
from common.run.result import EngineRun, RunResult
from common.run.signals import raise_if_signalled
from common.spec.bundle import BUNDLE_FILE, Bundle, load_bundle
from common.spec.declared import check_declaration
from common.spec.job import Job
from common.spec.transforms import required_input_columns

PREFLIGHT_ROWS = 16


def prepare(job: Job) -> tuple[Bundle, InputInfo, pa.Table]:
    """Loads the bundle and inspects the input: every check that needs no engine."""
    bundle = load_bundle(job.bundle_path)
    pin_remote_model(bundle)  # a model named by URI, copied into the bundle once, on the driver
    check_declaration(job, bundle)
    required = [*job.passthrough_columns, *required_input_columns(bundle.transforms, bundle.features)]
    inputs = inspect_input(
        job.input_path, job.input_format, list(dict.fromkeys(required)), job.where, job.partition_types
    )
    check_portable_input(inputs, job.key, str(job.input_path))
    check_sql_transforms(bundle, inputs.schema)
    check_input_types(bundle, inputs.schema, str(job.input_path))
    keys = inputs.read_columns(job.key)
    check_input_keys(keys, str(job.input_path))
    _check_job_options(job, inputs)
    return bundle, inputs, keys


def check_sql_transforms(bundle: Bundle, schema: pa.Schema) -> None:
    """Types the ``sql`` transforms against the input (a decimal result, an unknown column, a
    string compared with a number): a BundleError naming the bundle and the transform."""
    if any(t.op == "sql" for t in bundle.transforms):
        from common.sql import SqlCompileError
        from common.sql.output_types import sql_output_types

        try:
            sql_output_types(bundle.transforms, schema)
        except SqlCompileError as exc:
            raise SqlCompileError(f"{bundle.path / BUNDLE_FILE}: {exc}") from None


def check_input_types(bundle: Bundle, schema: pa.Schema, where: str) -> None:
    """Runs the bundle's transforms on an empty batch of the input schema, and (for kinds whose
    features are numbers) reads the features as numbers: a string column where a number is needed
    fails here, on the driver, with the transforms' own type rules, before any engine starts."""
    batch = FeatureBatch(schema.empty_table(), "cpu")
    try:
        apply_transforms(batch, bundle.transforms)
        if handler_class(bundle).numeric_features:
            batch.numpy(list(bundle.features))
    except BatchPredictError as exc:
        raise InputError(f"input {where}: {exc}") from None


def _check_job_options(job: Job, inputs: InputInfo) -> None:
    if job.on_error == "dead_letter" and DEAD_LETTER_ERROR in job.passthrough_columns:
        raise JobError(
            f'{job.path}: output column "{DEAD_LETTER_ERROR}" clashes with the dead-letter error column'
        )
    if job.faults is not None:
        job.faults.check(inputs.schema.field(job.key[0]).type, job.key[0], f"{job.path}: [faults]")


def preflight(bundle: Bundle, inputs: InputInfo, job: Job) -> Predictor:
    """Checks the bundle for its kind (``ModelHandler.validate``), loads the model on the driver
    and predicts a few input rows under the job's error policy (without its faults), so a broken
    bundle fails fast with a clear message instead of deep inside an engine's worker; under
    dead_letter a row that raises here is no reason to stop."""
    policy = ErrorPolicy(key=job.key, on_error=job.on_error)
    predictor = Predictor(bundle, run_transforms=True, passthrough=job.passthrough_columns, policy=policy)
    predictor.handler.validate()
    check_preflight_rows(predictor.run_batch(inputs.head(PREFLIGHT_ROWS)), bundle)
    return predictor


def run_job(
    job: Job,
    backend: str | None,
    *,
    check_model: bool = True,
    resume: bool = False,
    progress: bool = False,
    engines: EngineSession | None = None,
    notes: Sequence[str] = (),
) -> RunResult:
    """Runs ``job`` on ``backend`` and publishes its output; raises BatchPredictError on bad input.

    Args:
        backend: a backend name, or None for ``$BATCH_PREDICT_BACKEND`` (``auto`` is the CLI's:
            it picks the name, ``common.rollout.certificate.choose_backend``, before calling this).
        resume: carry on from the staging folder a killed run of this output left, keeping its
            committed chunks (``common.run.chunks``); refused when the job, bundle or input changed.
        progress: report rows done on stderr while the chunks run (``common.run.progress``).
        engines: the engines of a sequence of jobs (the CLI passes one): each starts on the first
            job that needs it and stays up for the next, until ``EngineSession.close`` stops it.
        notes: what the summary and the output's manifest say first (why ``auto`` chose the backend).

    The result's ``seconds`` run from the call to the published output.
    """
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat()
    notes = list(notes)
    engine_backend = engines.backend(backend) if engines is not None else get_backend(backend)
    name = engine_backend.name
    check_output_paths(job.output_path, job.input_path, job.bundle_path, job.path)
    bundle, inputs, input_keys = prepare(job)
    check_output_spares(job.output_path, inputs.files, "input file")
    check_output_spares(job.output_path, (p for p in bundle.path.rglob("*") if p.is_file()), "bundle file")
    if check_model:
        predictor = preflight(bundle, inputs, job)
    else:
        predictor = Predictor(bundle, passthrough=job.passthrough_columns)
    bundle_hash = bundle.content_hash()
    identity = run_identity(job, name, bundle_hash, inputs)
    adopt = find_resumable(job.output_path, identity) if resume else None
    with (
        staged_output(job.output_path, job.overwrite, adopt=adopt) as stage,
        Progress(inputs.num_rows, name, enabled=progress) as bar,
    ):
        if adopt is not None:
            chunks = ChunkManifest.load(stage)
            chunks.discard_unfinished()
        else:
            plan = plan_chunks(inputs.files, inputs.format, job.chunk_rows)
            chunks = ChunkManifest.create(stage, identity, plan)
        engine_started = time.perf_counter()

        def run_engine(chunk_inputs: InputInfo, folder) -> EngineRun:
            try:
                return engine_backend.run(job, bundle, chunk_inputs, folder, job.backend_settings(name))
            except Exception as exc:  # engines wrap worker errors (Ray in a hybrid class); ours as one line
                ours = _unwrap(exc, name)
                if ours is exc:
                    raise
                raise ours from exc

        chunked = run_chunks(chunks, inputs, run_engine, bar)
        engine = _merge(chunked.engine_runs)
        engine_seconds = time.perf_counter() - engine_started
        if resume:
            notes.append(
                chunked.resume_note() + ("" if adopt else " (no staged run of this output to resume)")
            )
        files = output_files(stage)
        dead_rows = (
            split_dead_letters(files, stage, job.passthrough_columns) if job.on_error == "dead_letter" else 0
        )
        if not files:  # an engine may write nothing for an empty input: publish an empty, typed file
            pq.write_table(predictor.result_schema(inputs.schema).empty_table(), stage / "part-empty.parquet")
            files = output_files(stage)
        check_dead_letter_share(dead_rows, inputs.num_rows, stage)
        output_keys = read_parquet_columns(files, job.key)
        dead_keys = read_parquet_columns(dead_letter_files(stage), job.key) if dead_rows else None
        reconcile(input_keys, output_keys, dead_keys)
        result = RunResult(
            backend=name,
            rows_in=inputs.num_rows,
            rows_out=output_keys.num_rows,
            seconds=time.perf_counter() - started,
            startup_seconds=engine.startup_seconds,
            engine_seconds=engine_seconds,
            device=engine.device,
            output=job.output_path,
            dead_letter_rows=dead_rows,
            notes=tuple(notes),
        )
        raise_if_signalled()  # a SIGTERM a library swallowed still publishes nothing
        finish_output(
            stage,
            {
                "job": str(job.path),
                "backend": name,
                "bundle": str(bundle.path),
                "bundle_hash": bundle_hash,
                "rows_in": result.rows_in,
                "rows_out": result.rows_out,
                "dead_letter_rows": dead_rows,
                "on_error": job.on_error,
                "reconciled": True,
                "started": started_at,
                "finished": dt.datetime.now(dt.UTC).isoformat(),
                "device": engine.device,
                "engine": engine.details,
                "chunks": {
                    "total": chunked.total,
                    "already_done": chunked.already_done,
                    "run": len(chunked.engine_runs),
                },
                "notes": list(notes),
            },
        )
    return replace(result, seconds=time.perf_counter() - started)  # published: the rename is done


def _merge(runs: tuple[EngineRun, ...]) -> EngineRun:
    """One EngineRun for a run's chunks: the engine's start (paid by the first chunk; later ones
    find it running) and every device the chunks ran on."""
    if not runs:  # every chunk was committed by the killed run
        return EngineRun(startup_seconds=0.0, device="none (all chunks were already done)")
    devices = sorted({d for run in runs for d in run.device.split(",")})
    details = {**runs[0].details, "chunks_run": len(runs)}
    return EngineRun(sum(r.startup_seconds for r in runs), ",".join(devices), details)


class EngineError(BatchPredictError):
    """The engine failed for a reason of its own (a worker lost more often than it retries)."""


def _our_error_classes() -> dict[str, type[BatchPredictError]]:
    classes, todo = {}, [BatchPredictError]
    while todo:
        cls = todo.pop()
        classes[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return classes


def _unwrap(exc: BaseException, engine: str) -> BatchPredictError:
    """One of our errors from inside an engine's wrapped worker exception, as one line.

    Ray keeps the worker's exception object (``cause``); Spark carries the worker's Python traceback
    as text, whose last ``module.ErrorClass: message`` line is the outermost error (a chained cause
    comes first). Anything else becomes an EngineError holding the engine's informative line.
    """
    from common.errors import error_chain

    for current in error_chain(exc):
        if isinstance(current, BatchPredictError) and type(current).__module__.startswith("common."):
            return current  # not Ray's RayTaskError(ourError) hybrid: its str() is a traceback
    classes = _our_error_classes()
    text = str(exc)
    matches = re.findall(rf"\b({'|'.join(map(re.escape, classes))}): ([^\n]+)", text)
    if matches:
        name, message = matches[-1]
        return classes[name](re.sub(r"\s*SQLSTATE: \w+\s*$", "", message))  # Spark's raise_error appends it
    return EngineError(f"{engine} failed: {_engine_reason(text) or type(exc).__name__}")


def _engine_reason(text: str) -> str:
    """The informative part of an engine's error text: Spark's "most recent failure" cause, or the
    first non-empty line, shortened."""
    match = re.search(r"failed (\d+) times?, most recent failure: .*?\): ([^\n]+)", text)
    if match:
        return f"a task failed {match.group(1)} times; last: {match.group(2)}"[:500]
    match = re.search(r"An error occurred while calling (\S+?)\.?\n: ([\w.$]+): ([^\n]+)", text)
    if match:  # py4j: the JVM's exception is on the second line
        call, cls, message = match.groups()
        where = "Spark did not start with the [spark] master and conf" if "SparkContext" in call else call
        return f"{where}: {cls.rsplit('.', 1)[-1]}: {message}"[:500]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:500] if lines else ""
