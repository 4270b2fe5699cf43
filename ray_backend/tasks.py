"""What runs in Ray's task workers: read units, and read-predict for CPU replicas.

Plain functions, not actors: a Ray worker process serves every task of a driver, so the model a
worker loaded for one task (``cached_predictor``) serves its later tasks and later jobs of the
same ``batch-predict`` process too, where a new actor pool would load it again for every job.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from common.model.predictor import cached_predictor, run_cpu_stage
from common.run.result import note_device
from ray_backend.reading import read_unit


def predict_units(items: pa.Table, read: dict, predictor: dict, device_log: str) -> Iterator[pa.Table]:
    """A CPU task: reads each unit in batches and predicts them with this worker's Predictor
    (``predictor``: ``cached_predictor``'s arguments), under the job's error policy."""
    model = cached_predictor(run_transforms=True, **predictor)
    note_device(device_log, model.device)
    for item in items.to_pylist():
        for batch in read_unit(item, **read):
            yield model.run_batch(batch)


def read_units(items: pa.Table, read: dict, cpu_stage: dict | None = None) -> Iterator[pa.Table]:
    """A task ahead of the actor pool (GPU replicas, or a CPU stage): the units' batches, each
    through the CPU stage (``run_cpu_stage``'s arguments) when there is one."""
    for item in items.to_pylist():
        for batch in read_unit(item, **read):
            yield batch if cpu_stage is None else run_cpu_stage(batch, **cpu_stage)
