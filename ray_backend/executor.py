"""Runs a job on Ray Data: read Parquet, transforms + model in one callable class, write Parquet.

The callable class loads the model once per actor; transforms run inside it, numeric ones as
torch tensors on the model's device. With GPU replicas (or ``[ray] cpu_stage = true``) the host
transforms and the handler's ``preprocess`` (tokenizing) run first, in a CPU operator of their
own, so they overlap with the GPU work. CPU reservations are sized so that the replicas always
leave a CPU for the read and write tasks: on 2 CPUs, 2 replicas holding 1 CPU each starve the
reads and the job hangs forever.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import pyarrow as pa
import ray

from common.model.handler import has_preprocess
from common.model.kinds import handler_for
from common.model.predictor import ErrorPolicy, cached_predictor, error_policy, run_cpu_stage
from common.run.inputs import InputInfo
from common.run.output import scratch_dir
from common.run.result import EngineRun, note_device, noted_devices
from common.spec.bundle import Bundle
from common.spec.job import Job
from common.spec.transforms import split_host_stage
from ray_backend.settings import RaySettings


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
            bundle_path, True, passthrough, policy, threads=threads, host_stage_done=host_stage_done
        )
        _ = self.predictor.model  # load now, so a broken model fails at actor start
        note_device(device_log, self.predictor.device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.predictor.run_batch(batch)


def ensure_ray(settings: RaySettings) -> float:
    """Starts or joins Ray unless it is already running here; returns the start seconds.

    Joining a cluster (``[ray] address``) ships this harness's own packages to the workers as
    ``py_modules`` (merged into ``[ray] runtime_env``), so a worker runs the driver's code;
    the job's input, output and bundle paths must still be readable from every node. A cluster
    that refuses the driver's auth token fails with a one-line hint instead of Ray's generic
    "Failed to connect".
    """
    if ray.is_initialized():
        for name in ("address", "runtime_env"):
            if getattr(settings, name):
                warnings.warn(
                    f"Ray is already initialised in this process; [ray] {name} = "
                    f"{getattr(settings, name)!r} is ignored",
                    stacklevel=2,
                )
        return 0.0
    started = time.perf_counter()
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    if settings.address:
        runtime_env = dict(settings.runtime_env)
        import common

        ours = [str(Path(common.__file__).parent), str(Path(__file__).parent)]
        runtime_env["py_modules"] = [*ours, *runtime_env.get("py_modules", [])]
        try:
            ray.init(address=settings.address, runtime_env=runtime_env, **kwargs)
        except ConnectionError as exc:  # Ray 2.60 keeps the AuthenticationError as text in the cause
            if "InvalidAuthToken" not in f"{exc} {exc.__cause__}":
                raise
            raise ConnectionError(
                f"the Ray cluster at {settings.address} refused this driver's auth token: set "
                "RAY_AUTH_MODE=token "
                "and the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; "
                "`ray get-auth-token` on the head node prints it)"
            ) from exc
    else:
        ray.init(runtime_env=dict(settings.runtime_env) or None, **kwargs)
    return time.perf_counter() - started


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
        gpus = float(settings.num_gpus)
    if settings.num_cpus == "auto":
        cpus = max(0.0, min(1.0, (total_cpus - 1.0) / settings.concurrency))
    else:
        cpus = float(settings.num_cpus)
        if cpus * settings.concurrency > total_cpus - 1.0:
            warnings.warn(
                f"[ray] {settings.concurrency} replicas x num_cpus {cpus} leave less than one of "
                f"{total_cpus:g} CPUs "
                "for reading; the job may stall",
                stacklevel=2,
            )
    return cpus, gpus


def run(job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: RaySettings) -> EngineRun:
    startup = ensure_ray(settings)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = settings.progress_bars
    if not settings.progress_bars:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    cpus, gpus = replica_resources(settings)
    batch_size = settings.gpu_batch_size if gpus and settings.gpu_batch_size else bundle.batch_size
    needed = list(dict.fromkeys([*job.passthrough_columns, *_input_columns(bundle, inputs.schema)]))
    if inputs.format == "csv":
        ds = ray.data.read_csv(inputs.paths, convert_options=inputs.csv_options(needed))
    else:
        ds = read_parquet(inputs, needed)
    rows_per_block = block_rows(
        inputs.num_rows, batch_size, settings.concurrency, settings.blocks_per_replica
    )
    if rows_per_block:
        # Ray 2.60 packs Parquet files into 128 MiB read tasks: a 1M-row input is one block, which
        # one task of each operator then processes alone (no overlap, one replica busy).
        ds = ds.repartition(target_num_rows_per_block=rows_per_block)
    policy = error_policy(job, scratch_dir(stage))
    devices = scratch_dir(stage) / "devices"
    cpu_stage = cpu_stage_plan(bundle, settings, gpus, job.on_error)
    if cpu_stage is not None:  # string/hash/time ops and tokenizing: a CPU operator, overlapping the model's
        host_ops, preprocess = cpu_stage
        stage_kwargs = {
            "bundle_path": str(bundle.path),
            "transforms": host_ops,
            "preprocess": preprocess,
            "key": tuple(job.key),
        }
        ds = ds.map_batches(
            run_cpu_stage,
            fn_kwargs=stage_kwargs,
            batch_size=batch_size,
            batch_format="pyarrow",
            zero_copy_batch=True,
            num_cpus=1,
        )
    with warnings.catch_warnings():
        # max_restarts / max_task_retries travel as **ray_remote_args, which Ray 2.60 deprecates
        # (removal announced for 2.64) without a named replacement; the bound matters, so keep it.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        ds = ds.map_batches(
            PredictBatches,
            fn_constructor_kwargs={
                "bundle_path": str(bundle.path),
                "passthrough": job.passthrough_columns,
                "policy": policy,
                "threads": max(1, round(cpus)),
                "host_stage_done": cpu_stage is not None,
                "device_log": str(devices),
            },
            batch_size=batch_size,
            batch_format="pyarrow",
            zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(size=settings.concurrency),
            num_cpus=cpus,
            num_gpus=gpus,
            # A replica that dies (OOM, lost node, crash) is restarted and its batch retried, at most
            # 3 times per batch: Ray's default (-1) retries a batch that always kills its replica
            # forever. Exceptions raised by the model are not retried (a deterministic error recurs).
            max_restarts=-1,
            max_task_retries=3,
        )
    ds.write_parquet(str(stage))
    device = noted_devices(devices, "cuda" if gpus else "cpu")
    host_ops, preprocess = cpu_stage or ([], False)
    details = {
        "replica_cpus": cpus,
        "replica_gpus": gpus,
        "host_stage_ops": [t.op for t in host_ops],
        "preprocess_stage": preprocess,
        "rows_per_block": rows_per_block,
    }
    return EngineRun(startup_seconds=startup, device=device, details=details)


def read_parquet(inputs: InputInfo, columns: list[str]) -> ray.data.Dataset:
    """The input's whole files through Ray's Parquet reader; a chunk's row groups of a file
    (``inputs.row_groups``) are read by Ray tasks of their own, one file each."""
    parts = [ray.data.read_parquet(inputs.whole_paths, columns=columns)] if inputs.whole_paths else []
    if inputs.row_groups:
        items = [{"file": file, "row_groups": list(groups)} for file, groups in inputs.row_groups.items()]
        parts.append(
            ray.data.from_items(items).map_batches(
                read_row_groups, fn_kwargs={"columns": columns}, batch_size=1, batch_format="pyarrow"
            )
        )
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def read_row_groups(batch: pa.Table, columns: list[str]) -> pa.Table:
    """Reads the row groups each row of ``batch`` names (``file``, ``row_groups``)."""
    import pyarrow.parquet as pq

    files, groups = batch.column("file").to_pylist(), batch.column("row_groups").to_pylist()
    tables = [
        pq.ParquetFile(f).read_row_groups(g, columns=columns) for f, g in zip(files, groups, strict=True)
    ]
    return pa.concat_tables(tables)


def block_rows(rows: int, batch_size: int, concurrency: int, blocks_per_replica: int) -> int:
    """Rows per block for about ``blocks_per_replica`` blocks per replica, a multiple of the batch
    size (at least one batch); 0 when ``blocks_per_replica`` is 0 (keep the reader's blocks)."""
    if not blocks_per_replica:
        return 0
    per_block = math.ceil(rows / (blocks_per_replica * concurrency))
    return max(1, math.ceil(per_block / batch_size)) * batch_size


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
