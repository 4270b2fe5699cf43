"""The ``[ray]`` section of a job file, read by the Ray executor alone (no ray import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from common.errors import JobError


@dataclass(frozen=True)
class RaySettings:
    """Ray options.

    Attributes:
        address: empty to start Ray locally; ``auto``, ``host:port`` or ``ray://host:10001`` to join a
            cluster.
        concurrency: model replicas, each loading the model once: on CPUs, tasks that each read,
            predict and write a unit of the input (at most this many at once); with GPUs (or a
            CPU stage), actors. Never more than the input has units, so a small input gets one.
        num_gpus: GPUs per replica; ``auto`` = 1 when the cluster has a GPU per replica, an even
            share when it has fewer (1 GPU, 2 replicas: 0.5 each), 0 without GPUs.
        num_cpus: CPUs each replica reserves; ``auto`` leaves at least one CPU for reading and
            writing so that replicas cannot starve the read tasks (which hangs the job).
        gpu_batch_size: rows per model call when replicas hold a GPU (0 = the bundle's batch_size).
        blocks_per_replica: the input is cut into about this many read units per replica (runs of
            whole Parquet row groups, planned on the driver), so every replica gets work and a
            slow unit does not hold the job up; 0 = one unit per file.
        progress_bars: show Ray Data's progress bars.
        cpu_stage: run the host transforms (string, hash, time zone) and the handler's
            ``preprocess`` (tokenizing) as a separate CPU operator before the model replicas,
            so they overlap with GPU work; ``auto`` = when replicas hold GPUs. Off under
            ``on_error = "dead_letter"`` (its errors are per model batch).
        runtime_env: a Ray runtime environment for the job (``env_vars``, ``pip``, ``py_modules``,
            ...), passed to ``ray.init``.
        ship_code: send this harness's own packages to the cluster as ``py_modules``, so nodes need
            Ray and the model libraries but not this package; ``auto`` = when the cluster's head
            is on another machine (a cluster started here runs the same files already).
    """

    address: str = ""
    concurrency: int = 2
    num_gpus: Literal["auto"] | float = "auto"
    num_cpus: Literal["auto"] | float = "auto"
    gpu_batch_size: int = 0
    blocks_per_replica: int = 4
    progress_bars: bool = False
    cpu_stage: Literal["auto"] | bool = "auto"
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    ship_code: Literal["auto"] | bool = "auto"

    def check(self, where: str) -> None:
        if self.concurrency < 1:
            raise JobError(f'{where}: field "concurrency" must be >= 1, got {self.concurrency}')
        for name in ("num_gpus", "num_cpus", "blocks_per_replica", "gpu_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, str) and value < 0:
                raise JobError(f'{where}: field "{name}" must be >= 0, got {value!r}')
        if not isinstance(self.runtime_env.get("py_modules", []), list):
            raise JobError(f'{where}: field "runtime_env": py_modules must be a list of paths or URIs')


def check_gpu_request(settings: RaySettings, resources: Mapping[str, float]) -> None:
    """A numeric ``num_gpus`` the cluster cannot give one replica would leave Ray waiting for it
    forever: refused at once, naming the setting and what the cluster has."""
    if settings.num_gpus == "auto" or not settings.num_gpus:
        return
    have = resources.get("GPU", 0.0)
    if float(settings.num_gpus) > have:
        shown = ", ".join(
            f"{name} {value:g}" for name, value in sorted(resources.items()) if name in ("CPU", "GPU")
        )
        raise JobError(
            f"[ray] num_gpus = {settings.num_gpus:g} per replica, but the Ray cluster has {have:g} GPUs "
            f'({shown or "no resources"}); set num_gpus = "auto" or 0'
        )
