"""The reference executor: one process, pyarrow and the bundle, no engine. The parity referee.

It runs the same Predictor as the Ray actor (transforms on the model's side) over the same files,
batch by batch, so when Spark and Ray disagree the report can say which of them left it. It is
registered as the backend ``reference``, so it goes through the same checks and atomic output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from common.bundle import Bundle
from common.inputs import InputInfo
from common.job import Job
from common.output import scratch_dir
from common.predictor import Predictor, error_policy
from common.result import EngineRun
from common.settings import parse_section

NAME = "reference"


@dataclass(frozen=True)
class ReferenceSettings:
    """The reference executor has no settings; a ``[reference]`` section is not read."""


def parse_settings(section, where: str) -> ReferenceSettings:
    return parse_section(ReferenceSettings, section, where)


def iter_input_batches(inputs: InputInfo, batch_size: int):
    """The input as Arrow record batches of at most ``batch_size`` rows, file by file."""
    if inputs.format == "csv":
        import pyarrow.csv as pacsv

        opts = pacsv.ConvertOptions(column_types=inputs.schema)
        for file in inputs.files:
            yield from pacsv.read_csv(file, convert_options=opts).to_batches(max_chunksize=batch_size)
        return
    for file in inputs.files:
        yield from pq.ParquetFile(file).iter_batches(batch_size=batch_size)


def run(job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: ReferenceSettings) -> EngineRun:
    started = time.perf_counter()
    policy = error_policy(job, scratch_dir(stage))
    predictor = Predictor(bundle, apply_transforms=True, passthrough=job.output_columns, policy=policy)
    _ = predictor.model
    startup = time.perf_counter() - started
    stage.mkdir(parents=True)
    schema = predictor.engine_schema(inputs.schema)
    with pq.ParquetWriter(stage / "part-00000.parquet", schema) as writer:
        for batch in iter_input_batches(inputs, bundle.batch_size):
            writer.write_table(predictor.run_batch(batch))
    return EngineRun(startup_seconds=startup, device=predictor.device)
