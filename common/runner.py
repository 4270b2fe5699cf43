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

import pyarrow as pa
import pyarrow.parquet as pq

from common.bundle import Bundle, load_bundle
from common.dead_letter import DEAD_LETTER_ERROR, dead_letter_files, split_dead_letters
from common.errors import BatchPredictError, InputError, JobError
from common.features import FeatureBatch
from common.inputs import InputInfo, inspect_input
from common.job import Job
from common.output import data_files, finish_output, staged_output
from common.predictor import ErrorPolicy, Predictor
from common.reconcile import check_input_keys, read_keys, reconcile
from common.registry import get_backend
from common.result import RunResult
from common.transforms import apply_transforms, required_input_columns

PREFLIGHT_ROWS = 16


def prepare(job: Job) -> tuple[Bundle, InputInfo, pa.Table]:
    """Loads the bundle and inspects the input: every check that needs no engine."""
    bundle = load_bundle(job.bundle_path)
    required = list(dict.fromkeys([*job.output_columns, *required_input_columns(bundle.transforms, bundle.features)]))
    inputs = inspect_input(job.input_path, job.input_format, required)
    check_input_types(bundle, inputs.schema, str(job.input_path))
    keys = read_keys(inputs.files, job.key, inputs.format, inputs.schema)
    check_input_keys(keys, str(job.input_path))
    _check_job_options(job, inputs)
    return bundle, inputs, keys


def check_input_types(bundle: Bundle, schema: pa.Schema, where: str) -> None:
    """Runs the bundle's transforms on an empty batch of the input schema, and (for sklearn and
    torch) reads the features as numbers: a string column where a number is needed fails here,
    on the driver, with the transforms' own type rules, before any engine starts or row is read."""
    batch = FeatureBatch(schema.empty_table(), "cpu")
    try:
        apply_transforms(batch, bundle.transforms)
        if bundle.kind in ("sklearn", "torch"):
            batch.numpy(list(bundle.features))
    except BatchPredictError as exc:
        raise InputError(f"input {where}: {exc}") from None


def _check_job_options(job: Job, inputs: InputInfo) -> None:
    if job.on_error == "dead_letter" and DEAD_LETTER_ERROR in job.output_columns:
        raise JobError(f'{job.path}: output column "{DEAD_LETTER_ERROR}" clashes with the dead-letter error column')
    faults = job.section("faults")
    if faults:
        from common.faults import parse_faults

        spec = parse_faults(faults, f"{job.path}: [faults]")
        spec.check(inputs.schema.field(job.key[0]).type, job.key[0], f"{job.path}: [faults]")


def preflight(bundle: Bundle, inputs: InputInfo, job: Job) -> Predictor:
    """Loads the model on the driver and predicts a few input rows under the job's error policy
    (without its faults), so a broken bundle fails fast with a clear message instead of deep inside
    an engine's worker; under dead_letter a row that raises here is no reason to stop."""
    policy = ErrorPolicy(key=job.key, on_error=job.on_error)
    predictor = Predictor(bundle, apply_transforms=True, passthrough=job.output_columns, policy=policy)
    predictor.run_batch(_head(inputs, PREFLIGHT_ROWS))
    return predictor


def run_job(job: Job, backend: str | None, *, check_model: bool = True) -> RunResult:
    """Runs ``job`` on ``backend`` and publishes its output; raises BatchPredictError on bad input."""
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat()
    module = get_backend(backend)
    settings = module.parse_settings(job.section(module.NAME), f"{job.path}: [{module.NAME}]")
    bundle, inputs, input_keys = prepare(job)
    predictor = preflight(bundle, inputs, job) if check_model else Predictor(bundle, passthrough=job.output_columns)
    with staged_output(job.output_path, job.overwrite) as stage:
        try:
            engine = module.run(job, bundle, inputs, stage, settings)
        except BatchPredictError:
            raise
        except Exception as exc:  # engines wrap worker errors; surface ours as one line
            raise _unwrap(exc, module.NAME) from exc
        files = data_files(stage) if stage.exists() else []
        dead_rows = split_dead_letters(files, stage, job.output_columns) if job.on_error == "dead_letter" else 0
        if not files:  # an engine may write nothing for an empty input: publish an empty, typed file
            stage.mkdir(parents=True, exist_ok=True)
            pq.write_table(predictor.output_schema(inputs.schema).empty_table(), stage / "part-empty.parquet")
            files = data_files(stage)
        output_keys = read_keys(files, job.key)
        dead_keys = read_keys(dead_letter_files(stage), job.key) if dead_rows else None
        reconcile(input_keys, output_keys, dead_keys)
        seconds = time.perf_counter() - started
        result = RunResult(
            backend=module.NAME, rows_in=inputs.num_rows, rows_out=output_keys.num_rows, seconds=seconds,
            startup_seconds=engine.startup_seconds, device=engine.device, output=job.output_path,
            dead_letter_rows=dead_rows,
        )
        finish_output(stage, {
            "job": str(job.path), "backend": module.NAME, "bundle": str(bundle.path),
            "bundle_hash": bundle.content_hash(), "rows_in": result.rows_in, "rows_out": result.rows_out,
            "dead_letter_rows": dead_rows, "on_error": job.on_error, "reconciled": True,
            "started": started_at, "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
            "device": engine.device, "engine": engine.details,
        })
    return result


def _head(inputs: InputInfo, rows: int) -> pa.Table:
    if inputs.num_rows == 0:
        return inputs.schema.empty_table()
    if inputs.format == "csv":
        import pyarrow.csv as pacsv

        opts = pacsv.ConvertOptions(column_types=inputs.schema)
        return pacsv.read_csv(inputs.files[0], convert_options=opts).slice(0, rows)
    for file in inputs.files:
        pf = pq.ParquetFile(file)
        if pf.metadata.num_rows:
            return pa.Table.from_batches([next(pf.iter_batches(batch_size=rows))])
    return inputs.schema.empty_table()


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
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BatchPredictError) and type(current).__module__.startswith("common."):
            return current  # not Ray's RayTaskError(ourError) hybrid: its str() is a traceback
        todo += [getattr(current, "cause", None), current.__cause__, current.__context__]
    classes = _our_error_classes()
    text = str(exc)
    matches = re.findall(rf"\b({'|'.join(map(re.escape, classes))}): ([^\n]+)", text)
    if matches:
        name, message = matches[-1]
        return classes[name](message)
    return EngineError(f"{engine} failed: {_engine_reason(text) or type(exc).__name__}")


def _engine_reason(text: str) -> str:
    """The informative part of an engine's error text: Spark's "most recent failure" cause, or the
    first non-empty line, shortened."""
    match = re.search(r"failed (\d+) times?, most recent failure: .*?\): ([^\n]+)", text)
    if match:
        return f"a task failed {match.group(1)} times; last: {match.group(2)}"[:500]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:500] if lines else ""
