"""Runs a job on Ray Data: read units planned on the driver, the bundle, Parquet out.

On CPUs, each unit of the input (whole Parquet row groups, ``ray_backend.reading``) is one Ray
task that reads it, runs the transforms and the model (``Predictor.run_batch``) and writes it:
Ray Data fuses the three, as the ceiling's processes do, and a worker process keeps its loaded
model for its later tasks and jobs (``ray_backend.tasks``). With GPU replicas (or ``[ray]
cpu_stage = true``) the model runs in an actor pool instead, one actor per replica holding its
GPU, fed by read tasks and (for host transforms and ``preprocess``) a CPU operator, so reading
and CPU work overlap the GPU's. CPU reservations are sized so that the replicas always leave a
CPU for the read and write tasks (on 2 CPUs, 2 actors holding 1 CPU each starve the reads and the
job hangs forever), and no task or actor asks for more than one node has (``ray_backend.sizing``).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pyarrow as pa
import ray

from common.errors import BatchPredictError, error_chain
from common.model.handler import has_preprocess
from common.model.kinds import handler_for
from common.model.predictor import ErrorPolicy, cached_predictor, error_policy
from common.run.inputs import InputInfo
from common.run.output import scratch_dir
from common.run.result import EngineRun, note_device, noted_devices
from common.spec.bundle import Bundle
from common.spec.job import Job
from common.spec.transforms import split_host_stage
from ray_backend import engine
from ray_backend.reading import plan_units, rows_per_unit
from ray_backend.settings import RaySettings, check_gpu_request
from ray_backend.sizing import alive_nodes, check_plan_fits, largest_node
from ray_backend.tasks import predict_units, read_units

_RETRY_NOTE = re.compile(r"\nFailed to .* after \d+/\d+ attempts \(total backoff .*", re.S)


class PredictBatches:
    """The Ray Data callable class: one Predictor (one loaded model) per actor, running
    ``Predictor.run_batch`` (the job's error policy) on every batch."""

    def __init__(
        self,
        bundle_path: str,
        passthrough: tuple[str, ...],
        policy: ErrorPolicy = ErrorPolicy(),
        threads: int | None = None,
        host_stage_done: bool = False,
        device_log: str | None = None,
    ):
        self.predictor = cached_predictor(
            bundle_path,
            run_transforms=True,
            passthrough=passthrough,
            policy=policy,
            threads=threads,
            host_stage_done=host_stage_done,
        )
        _ = self.predictor.model  # load now, so a broken model fails at actor start
        note_device(device_log, self.predictor.device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.predictor.run_batch(batch)


def replica_resources(
    settings: RaySettings, resources: dict[str, float] | None = None
) -> tuple[float, float]:
    """CPUs and GPUs per model replica, from the settings and what the cluster has
    (``resources``: ``ray.cluster_resources()`` unless given)."""
    resources = ray.cluster_resources() if resources is None else resources
    total_cpus = resources.get("CPU", 1.0)
    total_gpus = resources.get("GPU", 0.0)
    if settings.num_gpus == "auto":
        # A GPU each while there are enough, else an even share (two replicas on one GPU: 0.5
        # each), so every replica starts instead of one waiting for a GPU that never frees.
        gpus = 1.0 / math.ceil(settings.concurrency / int(total_gpus)) if total_gpus >= 1 else 0.0
    else:
        check_gpu_request(settings, resources)
        gpus = float(settings.num_gpus)
    if settings.num_cpus == "auto":
        cpus = max(0.0, min(1.0, (total_cpus - 1.0) / settings.concurrency))
    else:  # whether the replicas leave a CPU for reading is checked against the nodes (sizing.py)
        cpus = float(settings.num_cpus)
    return cpus, gpus


def run(job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: RaySettings) -> EngineRun:
    """``Backend.run`` on Ray, shaped as ``spark_backend.executor.run``: the engine
    (``engine.start``), the input (``reading``), the bundle, then Parquet into ``stage``."""
    startup = engine.start(settings)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = settings.progress_bars
    # Ray Data reserves a share of the cluster for each operator's outputs; on 2 CPUs that let one
    # task run at a time (measured: 4 equal tasks ran one after another, 1.3 s instead of 0.6 s).
    # Only for this job: the process's other Ray Data work keeps its own setting.
    reserving, context.op_resource_reservation_enabled = context.op_resource_reservation_enabled, False
    try:
        return _run(job, bundle, inputs, stage, settings, startup)
    finally:
        context.op_resource_reservation_enabled = reserving


def _run(job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: RaySettings, startup: float):
    if not settings.progress_bars:
        engine.quiet_loggers()  # after ray.data set up its logging
    cpus, gpus = replica_resources(settings)
    batch_size = settings.gpu_batch_size if gpus and settings.gpu_batch_size else bundle.batch_size
    needed = list(dict.fromkeys([*job.passthrough_columns, *_input_columns(bundle, inputs.schema)]))
    units = plan_units(
        inputs.paths,
        inputs.group_rows,
        rows_per_unit(inputs.num_rows, settings.concurrency, settings.blocks_per_replica),
        selected=inputs.row_groups,  # a chunk of a resumable run: only its own row groups
    )
    replicas = max(1, min(settings.concurrency, len(units)))  # never more replicas than units of work
    policy = error_policy(job, scratch_dir(stage))
    devices = str(scratch_dir(stage) / "devices")
    cpu_stage = cpu_stage_plan(bundle, settings, gpus, job.on_error)
    read = {
        "columns": needed,
        "batch_rows": batch_size,
        "fmt": inputs.format,
        "schema": inputs.schema if inputs.format == "csv" else None,
        "partitions": inputs.partitions,
    }
    details = {
        "replicas": replicas,
        "read_units": len(units),
        "replica_gpus": gpus,
        "host_stage_ops": [],
        "preprocess_stage": False,
    }
    write_args: dict = {}
    write_pool: dict = {}
    nodes = alive_nodes()
    if not units:  # an empty input: no task to run; the runner publishes an empty, typed output
        return EngineRun(startup_seconds=startup, device="cuda" if gpus else "cpu", details=details)
    ds = ray.data.from_items([u.to_item() for u in units], override_num_blocks=len(units))
    if gpus == 0 and cpu_stage is None:
        # One task per unit reads, predicts and writes (Ray Data fuses them), in a worker that keeps
        # its model between tasks and jobs. Ray Data's task pool runs at most `replicas` at once;
        # each reserves its share of the cluster's CPUs (never more than one node has), with as many
        # torch threads. A task whose worker dies (OOM, kill, lost node) is retried at most 3 times:
        # one that always kills its worker fails the job instead of looping. Exceptions raised by
        # the model are not retried (they recur).
        task_cpus = task_cpu_share(settings, largest=largest_node(nodes))
        check_plan_fits(nodes, "each read-predict-write task", {"CPU": task_cpus})
        predictor = {
            "bundle_path": str(bundle.path),
            "passthrough": job.passthrough_columns,
            "policy": policy,
            "threads": max(1, math.floor(task_cpus)),
        }
        # The write gets the same remote arguments and pool size, or Ray Data would not fuse it.
        write_args = {"num_cpus": task_cpus, "max_retries": 3}
        write_pool = {"concurrency": replicas}
        ds = map_batches(
            ds,
            predict_units,
            batch_size=1,
            fn_kwargs={"read": read, "predictor": predictor, "device_log": devices},
            compute=ray.data.TaskPoolStrategy(size=replicas),
            **write_args,
        )
        details["replica_cpus"] = task_cpus
    else:
        check_plan_fits(nodes, "model replicas", {"CPU": cpus, "GPU": gpus}, replicas, then={"CPU": 1.0})
        stage_args = None
        if cpu_stage is not None:  # string/hash/time ops and tokenizing, in the read tasks
            host_ops, preprocess = cpu_stage
            stage_args = {
                "bundle_path": str(bundle.path),
                "transforms": host_ops,
                "preprocess": preprocess,
                "key": tuple(job.key),
            }
        ds = map_batches(
            ds, read_units, batch_size=1, fn_kwargs={"read": read, "cpu_stage": stage_args}, num_cpus=1
        )
        ds = _replica_pool(
            ds,
            bundle,
            job,
            policy,
            devices,
            batch_size,
            cpus,
            gpus,
            replicas,
            host_stage_done=cpu_stage is not None,
        )
        host_ops, preprocess = cpu_stage or ([], False)
        details.update(
            {"replica_cpus": cpus, "host_stage_ops": [t.op for t in host_ops], "preprocess_stage": preprocess}
        )
    try:
        ds.write_parquet(str(stage), ray_remote_args=write_args, **write_pool)
    except Exception as exc:
        _drop_retry_notes(exc)
        raise
    device = noted_devices(Path(devices), "cuda" if gpus else "cpu")
    return EngineRun(startup_seconds=startup, device=device, details=details)


def _replica_pool(
    ds, bundle, job, policy, devices, batch_size, cpus, gpus, replicas, *, host_stage_done: bool
):
    """The model replicas: an actor pool (GPUs when reserved), fed by the read tasks."""
    return map_batches(
        ds,
        PredictBatches,
        batch_size=batch_size,
        actors=replicas,
        fn_constructor_kwargs={
            "bundle_path": str(bundle.path),
            "passthrough": job.passthrough_columns,
            "policy": policy,
            "threads": max(1, round(cpus)),
            "host_stage_done": host_stage_done,
            "device_log": devices,
        },
        zero_copy_batch=True,
        num_cpus=cpus,
        num_gpus=gpus,
        # A replica that dies (OOM, lost node, crash) is restarted and its batch retried, at most
        # 3 times per batch: Ray's default (-1) retries a batch that always kills its replica
        # forever. Exceptions raised by the model are not retried (a deterministic error recurs).
        max_restarts=-1,
        max_task_retries=3,
    )


def map_batches(ds: ray.data.Dataset, fn, *, batch_size: int, actors: int = 0, **options) -> ray.data.Dataset:
    """Ray Data's ``map_batches`` on pyarrow tables: the one call of it, since its signature has
    changed across Ray versions (``compute=`` vs ``concurrency=``). ``actors`` > 0 runs ``fn`` (a
    callable class) in a pool of that many actors; else each batch is a task.

    Retry bounds (``max_retries``, ``max_restarts``, ``max_task_retries``) travel in ``options`` as
    ``**ray_remote_args``, which Ray 2.60 deprecates (removal announced for 2.64) without a named
    replacement; the bound matters, so it stays and the deprecation warning is silenced here.
    """
    if actors:
        options["compute"] = ray.data.ActorPoolStrategy(size=actors)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return ds.map_batches(fn, batch_size=batch_size, batch_format="pyarrow", **options)


def task_cpu_share(
    settings: RaySettings, resources: dict[str, float] | None = None, largest: dict[str, float] | None = None
) -> float:
    """CPUs each CPU task reserves: ``num_cpus``, or (``auto``) the cluster's CPUs shared among
    ``concurrency`` tasks (their torch threads), at most what the ``largest`` node has: a task
    asking more than any node has waits forever. ``concurrency`` itself is Ray Data's task pool size."""
    if settings.num_cpus != "auto":
        return float(settings.num_cpus)
    resources = ray.cluster_resources() if resources is None else resources
    share = max(1.0, resources.get("CPU", 1.0) / settings.concurrency)
    node_cpus = (largest or {}).get("CPU", share)
    return min(share, node_cpus) if node_cpus >= 1.0 else share


def cpu_stage_plan(
    bundle: Bundle, settings: RaySettings, gpus: float, on_error: str
) -> tuple[list, bool] | None:
    """What a CPU operator ahead of the replicas runs: (host transforms, whether the handler's
    ``preprocess`` runs there), or None when everything runs in the replicas."""
    wanted = settings.cpu_stage is True or (settings.cpu_stage == "auto" and gpus > 0)
    if not wanted:
        return None
    if on_error == "dead_letter":  # a CPU-stage failure would not be isolated to its rows
        if settings.cpu_stage is True:
            warnings.warn(
                '[ray] cpu_stage is off under job.on_error = "dead_letter": '
                "host transforms and preprocess run in the replicas",
                stacklevel=2,
            )
        return None
    host_ops = split_host_stage(bundle.transforms)[0]
    preprocess = has_preprocess(handler_for(bundle, "cpu"))
    return (host_ops, preprocess) if host_ops or preprocess else None


def _input_columns(bundle: Bundle, schema: pa.Schema) -> list[str]:
    from common.spec.transforms import required_input_columns

    return [c for c in required_input_columns(bundle.transforms, bundle.features) if c in schema.names]


def _drop_retry_notes(exc: BaseException) -> None:
    """Ray Data appends its retry advice to the message of the exception a task raised ("Failed to
    apply UDF transform after 1/1 attempts ... if you believe this to be transient.", in
    ``args[0]``); our own errors keep their one line, so the advice is cut from them again."""
    for current in error_chain(exc):
        if isinstance(current, BatchPredictError) and current.args and isinstance(current.args[0], str):
            current.args = (_RETRY_NOTE.sub("", current.args[0]), *current.args[1:])
