"""Runs one job on one backend: validate everything, run the engine into a staging folder,
reconcile rows and keys, publish atomically. Shared by the CLI, the parity runner and the tests.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.bundle import Bundle, load_bundle
from common.errors import BatchPredictError, BundleError
from common.inputs import InputInfo, inspect_input
from common.job import Job
from common.output import data_files, finish_output, staged_output
from common.predictor import Predictor
from common.reconcile import check_input_keys, read_keys, reconcile
from common.registry import get_backend
from common.result import RunResult
from common.transforms import required_input_columns

PREFLIGHT_ROWS = 16


def prepare(job: Job) -> tuple[Bundle, InputInfo, pa.Table]:
    """Loads the bundle and inspects the input: every check that needs no engine."""
    bundle = load_bundle(job.bundle_path)
    required = list(dict.fromkeys([*job.output_columns, *required_input_columns(bundle.transforms, bundle.features)]))
    inputs = inspect_input(job.input_path, job.input_format, required)
    keys = read_keys(inputs.files, job.key, inputs.format, inputs.schema)
    check_input_keys(keys, str(job.input_path))
    return bundle, inputs, keys


def preflight(bundle: Bundle, inputs: InputInfo, passthrough: tuple[str, ...]) -> Predictor:
    """Loads the model on the driver and predicts a few input rows, so a broken bundle fails fast
    with a clear message instead of deep inside an engine's worker."""
    predictor = Predictor(bundle, apply_transforms=True, passthrough=passthrough)
    sample = _head(inputs, PREFLIGHT_ROWS)
    predictor.predict(sample)
    return predictor


def run_job(job: Job, backend: str | None, *, check_model: bool = True) -> RunResult:
    """Runs ``job`` on ``backend`` and publishes its output; raises BatchPredictError on bad input."""
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat()
    module = get_backend(backend)
    settings = module.parse_settings(job.section(module.NAME), f"{job.path}: [{module.NAME}]")
    bundle, inputs, input_keys = prepare(job)
    predictor = preflight(bundle, inputs, job.output_columns) if check_model else Predictor(bundle, passthrough=job.output_columns)
    with staged_output(job.output_path, job.overwrite) as stage:
        try:
            engine = module.run(job, bundle, inputs, stage, settings)
        except BatchPredictError:
            raise
        except Exception as exc:  # engines wrap worker errors; surface ours as one line
            raise _unwrap(exc) from exc
        files = data_files(stage) if stage.exists() else []
        if not files:  # an engine may write nothing for an empty input: publish an empty, typed file
            stage.mkdir(parents=True, exist_ok=True)
            pq.write_table(predictor.output_schema(inputs.schema).empty_table(), stage / "part-empty.parquet")
            files = data_files(stage)
        output_keys = read_keys(files, job.key)
        reconcile(input_keys, output_keys)
        seconds = time.perf_counter() - started
        result = RunResult(
            backend=module.NAME, rows_in=inputs.num_rows, rows_out=output_keys.num_rows, seconds=seconds,
            startup_seconds=engine.startup_seconds, device=engine.device, output=job.output_path,
        )
        finish_output(stage, {
            "job": str(job.path), "backend": module.NAME, "bundle": str(bundle.path),
            "bundle_hash": bundle.content_hash(), "rows_in": result.rows_in, "rows_out": result.rows_out,
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


_OUR_ERRORS = ("BundleError", "InputError", "OutputError", "JobError")


def _unwrap(exc: Exception) -> Exception:
    """Finds one of our errors inside an engine's wrapped worker exception; keeps the message one line."""
    text = str(exc)
    for name in _OUR_ERRORS:
        marker = f"{name}: "
        if marker in text:
            line = text.split(marker, 1)[1].splitlines()[0]
            from common import errors

            return getattr(errors, name)(line)
    return exc
