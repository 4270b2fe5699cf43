"""One bundle applied to Arrow batches: transforms, model, output checks. Used by every executor.

The Spark UDF, the Ray actor and the reference executor all call ``Predictor.run_batch`` so the
model, the output mapping, the checks and the error policy are the same code on every engine; only
where the transforms run differs (Spark columns before the UDF, or here, on the model's device).

``run_batch`` adds the job's error policy around ``predict``: a batch that raises fails the job with
its key range (``on_error = "fail"``), or is bisected down to the rows that raise, which come back
with an error message in ``ERROR_COLUMN`` for the runner to move to ``_dead_letter``
(``on_error = "dead_letter"``). A broken bundle contract (wrong row or column count, wrong type) is a
``BundleError`` and always fails the job: it is the model's fault, not a row's. A handler flags a bad
row with any other exception (``InputError`` included).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from common.errors import BatchPredictError, BundleError, InputError
from common.model.features import FeatureBatch
from common.model.handler import ModelHandler, has_preprocess, resolve_device
from common.model.kinds import handler_for
from common.model.transform_ops import apply_transforms
from common.spec.bundle import Bundle, load_bundle
from common.spec.faults import FaultSpec, job_faults
from common.spec.transforms import Transform, split_host_stage

#: The column through which a worker hands a failed row's one-line error to the runner, under
#: ``on_error = "dead_letter"`` (``common.run.dead_letter`` splits it off before publishing).
ERROR_COLUMN = "__batch_predict_error__"


class BatchFailedError(BatchPredictError):
    """A batch's prediction raised and ``job.on_error`` is ``fail``; names the batch's key range."""


@dataclass(frozen=True)
class ErrorPolicy:
    """What a worker does when a batch's prediction raises (hashable: part of the predictor cache key).

    Attributes:
        key: the job's key columns (they are among the passthrough columns), to name a failing batch.
        on_error: ``fail`` or ``dead_letter``.
        faults: the testing hook (``common.spec.faults``), or None.
    """

    key: tuple[str, ...] = ()
    on_error: str = "fail"
    faults: FaultSpec | None = None

    @property
    def dead_letter(self) -> bool:
        return self.on_error == "dead_letter"


def error_policy(job, scratch) -> ErrorPolicy:
    """The policy of one run of ``job``; ``scratch`` is the run's scratch folder (fault markers)."""
    return ErrorPolicy(key=tuple(job.key), on_error=job.on_error, faults=job_faults(job, scratch))


class Predictor:
    """Loads a bundle's model once (lazily, on the worker) and predicts Arrow tables.

    Args:
        bundle: the parsed bundle.
        run_transforms: run the bundle's transforms here (Ray, reference); False when the
            engine already applied them as its own columns (Spark).
        host_stage_done: the CPU stage (``run_cpu_stage``: the host ops of ``split_host_stage``
            and the handler's ``preprocess``) already ran in an operator before this one (Ray
            with GPU replicas); run only the rest here.
        passthrough: input columns copied unchanged to the output, ahead of the model outputs.
        policy: what ``run_batch`` does when a batch raises.
        device: the device to use, when the engine assigned one (Spark's task GPU, ``cuda:N``);
            None resolves the bundle's ``device`` here.
        threads: torch intra-op threads for this worker process, set when the model loads; None
            keeps torch's default (all cores). Engines running several workers per machine pass
            their per-worker CPU share: on 2 CPUs, two workers of 2 threads each ran a tiny
            model up to 20x slower than one thread each.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        run_transforms: bool = True,
        passthrough: Sequence[str] = (),
        policy: ErrorPolicy = ErrorPolicy(),
        device: str | None = None,
        threads: int | None = None,
        host_stage_done: bool = False,
    ):
        self.bundle = bundle
        self.run_transforms = run_transforms
        self.transforms = split_host_stage(bundle.transforms)[1] if host_stage_done else bundle.transforms
        self.host_stage_done = host_stage_done
        self.passthrough = tuple(passthrough)
        self.policy = policy
        self.threads = threads
        self.device = device or resolve_device(bundle.device)
        self.handler = handler_for(bundle, self.device)
        # A kind may run elsewhere than asked (LightGBM always on the CPU; a CPU-only wheel on a
        # CUDA replica): the transforms follow the model, and the executors report where it ran.
        self.device = str(self.handler.device)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    if self.threads:
                        import torch

                        torch.set_num_threads(max(1, self.threads))
                    self._model = self.handler.load_model()
        return self._model

    def result_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """Passthrough columns (typed as in the input) followed by the declared outputs."""
        fields = [input_schema.field(name) for name in self.passthrough]
        return pa.schema(fields + list(self.handler.output_schema()))

    def engine_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """What ``run_batch`` returns: the output schema, plus ``ERROR_COLUMN`` under dead_letter."""
        schema = self.result_schema(input_schema)
        return schema.append(pa.field(ERROR_COLUMN, pa.string())) if self.policy.dead_letter else schema

    def run_batch(self, table: pa.Table | pa.RecordBatch) -> pa.Table:
        """Predicts one batch under the job's error policy (and fault hook); what executors call."""
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        try:
            return self._attempt(table)
        except Exception as exc:
            if _fails_the_job(exc):
                raise
            if not self.policy.dead_letter:
                raise BatchFailedError(
                    f"{describe_batch(table, self.policy.key)} failed: {_one_line(exc)}"
                    ' (job.on_error = "dead_letter" sets failing rows aside instead)'
                ) from exc
            return pa.concat_tables(self._isolate(table, exc))

    def _attempt(self, table: pa.Table) -> pa.Table:
        if self.policy.faults is not None and self.policy.key:
            self.policy.faults.apply(table, self.policy.key[0])
        out = self.predict(table)
        if self.policy.dead_letter:
            out = out.append_column(pa.field(ERROR_COLUMN, pa.string()), pa.nulls(out.num_rows, pa.string()))
        return out

    def _isolate(self, table: pa.Table, exc: Exception) -> list[pa.Table]:
        """Bisects a failing batch: rows that predict come back normally, a single failing row with
        its error. k failing rows in n cost about 2k log2(n) extra model calls."""
        if table.num_rows == 1:
            return [self._failed_rows(table, exc)]
        middle = table.num_rows // 2
        parts: list[pa.Table] = []
        for half in (table.slice(0, middle), table.slice(middle)):
            try:
                parts.append(self._attempt(half))
            except Exception as half_exc:
                if _fails_the_job(half_exc):
                    raise
                parts.extend(self._isolate(half, half_exc))
        return parts

    def _failed_rows(self, table: pa.Table, exc: Exception) -> pa.Table:
        schema = self.engine_schema(table.schema)
        n = table.num_rows
        columns = [table.column(name) for name in self.passthrough]
        columns += [pa.nulls(n, field.type) for field in self.handler.output_schema()]
        columns.append(pa.array([_one_line(exc)] * n, pa.string()))
        return pa.Table.from_arrays(columns, schema=schema)

    def predict(self, table: pa.Table | pa.RecordBatch) -> pa.Table:
        """Predicts every row of ``table``; an empty table gives an empty table of the output schema."""
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        schema = self.result_schema(table.schema)
        if table.num_rows == 0:
            return schema.empty_table()
        batch = FeatureBatch(table, self.device)
        if self.run_transforms:
            apply_transforms(batch, self.transforms)
        if not self.host_stage_done:
            add_preprocessed(batch, self.handler)
        raw = self.handler.run_inference(batch, self.model)
        outputs = outputs_to_arrays(raw, self.handler.output_schema(), table.num_rows, str(self.bundle.path))
        columns = [table.column(name) for name in self.passthrough] + outputs
        return pa.Table.from_arrays(columns, schema=schema)


_CACHE: dict[tuple, Predictor] = {}
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()


def cached_predictor(
    bundle_path: str,
    *,
    run_transforms: bool = True,
    passthrough: Sequence[str] = (),
    policy: ErrorPolicy = ErrorPolicy(),
    device: str | None = None,
    threads: int | None = None,
    host_stage_done: bool = False,
) -> Predictor:
    """One Predictor (and so one loaded model) per worker process, reused across tasks and batches;
    the keywords are ``Predictor``'s.

    A worker that outlives a job (Ray's task workers serve every job of one driver) keeps the
    last ``_CACHE_SIZE`` Predictors, not one per job it ever ran."""
    key = (bundle_path, run_transforms, tuple(passthrough), policy, device, threads, host_stage_done)
    with _CACHE_LOCK:
        if key not in _CACHE:
            while len(_CACHE) >= _CACHE_SIZE:
                del _CACHE[next(iter(_CACHE))]  # the oldest
            _CACHE[key] = Predictor(
                load_bundle(bundle_path),
                run_transforms=run_transforms,
                passthrough=passthrough,
                policy=policy,
                device=device,
                threads=threads,
                host_stage_done=host_stage_done,
            )
        return _CACHE[key]


def run_cpu_stage(
    table: pa.Table,
    *,
    bundle_path: str,
    transforms: Sequence[Transform],
    preprocess: bool,
    key: Sequence[str] = (),
) -> pa.Table:
    """The CPU stage on one batch: the host ops, then the handler's ``preprocess`` (no model).

    Returns every input column plus what they made, for the model's operator to take from there.
    A failure names the batch's key range, as a failing model batch does.
    """
    batch = FeatureBatch(table, "cpu")
    try:
        apply_transforms(batch, transforms)
        if preprocess:
            add_preprocessed(batch, _cpu_handler(bundle_path))
    except Exception as exc:
        if _fails_the_job(exc):
            raise
        raise BatchFailedError(
            f"{describe_batch(table, key)} failed in the CPU stage: {_one_line(exc)}"
        ) from exc
    return batch.table()


@functools.lru_cache(maxsize=8)
def _cpu_handler(bundle_path: str) -> ModelHandler:
    """One handler per bundle and worker process for the CPU stage (it loads no model)."""
    return handler_for(load_bundle(bundle_path), "cpu")


def add_preprocessed(batch: FeatureBatch, handler: ModelHandler) -> None:
    """Adds the columns of ``handler.preprocess`` to ``batch``; a clash or a wrong length is the
    bundle's fault."""
    if not has_preprocess(handler):
        return
    where = f"bundle {handler.bundle.path}: preprocess"
    columns = handler.preprocess(batch)
    if not isinstance(columns, Mapping):
        raise BundleError(
            f"{where} returned {type(columns).__name__}; expected a mapping of column name -> array"
        )
    for name, values in columns.items():
        if name in batch.names():
            raise BundleError(f'{where} returned column "{name}", which the batch already has')
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            try:
                values = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise BundleError(f'{where} column "{name}": {exc}') from None
        if len(values) != batch.num_rows:
            raise BundleError(
                f'{where} returned {len(values)} rows in column "{name}" for a batch of {batch.num_rows}'
            )
        batch.set(name, values)


def describe_batch(table: pa.Table, key: Sequence[str]) -> str:
    """ "batch of 64 rows, id 128..191": the key range of a batch, to find it in the input."""
    import pyarrow.compute as pc

    ranges = []
    for name in key:
        if name in table.column_names and table.num_rows:
            bounds = pc.min_max(table.column(name))
            ranges.append(f"{name} {bounds['min'].as_py()!r}..{bounds['max'].as_py()!r}")
    return f"batch of {table.num_rows} rows" + (f", {', '.join(ranges)}" if ranges else "")


def _fails_the_job(exc: BaseException) -> bool:
    """A broken bundle contract (BundleError) or any of our errors but InputError fails the job
    whatever ``on_error`` says; any other exception, and an InputError about the rows' values (a
    null image, a date out of range), is the batch's: it names the batch, or is dead-lettered."""
    return isinstance(exc, BatchPredictError) and not isinstance(exc, InputError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def outputs_to_arrays(raw: Any, schema: pa.Schema, num_rows: int, where: str) -> list[pa.Array]:
    """Maps what a model returned onto the declared outputs, checking row and column counts and types."""
    names = schema.names
    if isinstance(raw, pa.Table):
        raw = {name: raw.column(name) for name in raw.column_names}
    elif hasattr(raw, "to_dict") and hasattr(raw, "columns"):  # a pandas DataFrame
        raw = {name: raw[name].to_numpy() for name in raw.columns}
    if isinstance(raw, dict):
        missing = [n for n in names if n not in raw]
        extra = [n for n in raw if n not in names]
        if missing or extra:
            raise BundleError(
                f"bundle {where}: model returned columns {sorted(raw)} but outputs declares {names}"
            )
        columns = [raw[n] for n in names]
    else:
        array = _to_numpy(raw)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise BundleError(
                f"bundle {where}: model returned an array of shape {array.shape}; expected (rows, outputs)"
            )
        if len(names) == 1 and pa.types.is_list(schema.field(0).type) and array.shape[1] != 1:
            columns = [list(array)]  # one embedding column: each row is a vector
        elif array.shape[1] != len(names):
            raise BundleError(
                f"bundle {where}: model returned {array.shape[1]} output columns but outputs declares "
                f"{len(names)} ({', '.join(names)})"
            )
        else:
            columns = [array[:, i] for i in range(array.shape[1])]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        arr = _to_arrow(values, field, where)
        if len(arr) != num_rows:
            raise BundleError(f"bundle {where}: model returned {len(arr)} rows for a batch of {num_rows}")
        arrays.append(arr)
    return arrays


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on the GPU
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _to_arrow(values: Any, field: pa.Field, where: str) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = _to_numpy(values) if not isinstance(values, list) else values
        if isinstance(values, np.ndarray) and values.ndim == 2:
            values = list(values)
        try:
            values = pa.array(values, from_pandas=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise BundleError(f"bundle {where}: output {field.name}: {exc}") from None
    if values.type == field.type:
        return values
    # A number cast to text (or back) succeeds and publishes other data than the model's.
    if not pa.types.is_null(values.type) and _is_text(values.type) != _is_text(field.type):
        raise BundleError(
            f"bundle {where}: output {field.name} is declared {field.type} but the model returns "
            f"{values.type}; declare the type the model returns in [outputs]"
        )
    try:
        return values.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BundleError(
            f"bundle {where}: output {field.name} is {values.type}, cannot become {field.type}: {exc}"
        ) from None


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ)
