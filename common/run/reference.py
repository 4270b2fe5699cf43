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

from common.model.predictor import Predictor, error_policy
from common.run.backends import EngineBackend
from common.run.inputs import InputInfo
from common.run.output import scratch_dir
from common.run.result import EngineRun
from common.spec.bundle import Bundle
from common.spec.job import Job


@dataclass(frozen=True)
class ReferenceSettings:
    """The reference executor has no settings: a ``[reference]`` section may only be empty."""


BACKEND = EngineBackend(name="reference", settings_class=ReferenceSettings, executor=__name__)


def run(job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: ReferenceSettings) -> EngineRun:
    started = time.perf_counter()
    policy = error_policy(job, scratch_dir(stage))
    predictor = Predictor(bundle, run_transforms=True, passthrough=job.passthrough_columns, policy=policy)
    _ = predictor.model
    startup = time.perf_counter() - started
    stage.mkdir(parents=True)
    schema = predictor.engine_schema(inputs.schema)
    with pq.ParquetWriter(stage / "part-00000.parquet", schema) as writer:
        for batch in inputs.iter_batches(bundle.batch_size):
            writer.write_table(predictor.run_batch(batch))
    return EngineRun(startup_seconds=startup, device=predictor.device)
