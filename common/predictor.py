"""One bundle applied to Arrow batches: transforms, model, output checks. Used by every executor.

The Spark UDF, the Ray actor and the reference executor all call ``Predictor.predict`` so the
model, the output mapping and the checks are the same code on every engine; only where the
transforms run differs (Spark columns before the UDF, or here, on the model's device).
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from common.bundle import Bundle, load_bundle
from common.errors import BundleError
from common.features import FeatureBatch
from common.models import handler_for, resolve_device
from common.transforms import apply_transforms


class Predictor:
    """Loads a bundle's model once (lazily, on the worker) and predicts Arrow tables.

    Args:
        bundle: the parsed bundle.
        apply_transforms: run the bundle's transforms here (Ray, reference); False when the
            engine already applied them as its own columns (Spark).
        passthrough: input columns copied unchanged to the output, ahead of the model outputs.
    """

    def __init__(self, bundle: Bundle, *, apply_transforms: bool = True, passthrough: Sequence[str] = ()):
        self.bundle = bundle
        self.apply_transforms = apply_transforms
        self.passthrough = tuple(passthrough)
        self.device = resolve_device(bundle.device)
        self.handler = handler_for(bundle, self.device)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self.handler.load_model()
        return self._model

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """Passthrough columns (typed as in the input) followed by the declared outputs."""
        fields = [input_schema.field(name) for name in self.passthrough]
        return pa.schema(fields + list(self.handler.output_schema()))

    def predict(self, table: pa.Table | pa.RecordBatch) -> pa.Table:
        """Predicts every row of ``table``; an empty table gives an empty table of the output schema."""
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        schema = self.output_schema(table.schema)
        if table.num_rows == 0:
            return schema.empty_table()
        batch = FeatureBatch(table, self.device)
        if self.apply_transforms:
            apply_transforms(batch, self.bundle.transforms)
        raw = self.handler.run_inference(batch, self.model)
        outputs = outputs_to_arrays(raw, self.handler.output_schema(), table.num_rows, str(self.bundle.path))
        columns = [table.column(name) for name in self.passthrough] + outputs
        return pa.Table.from_arrays(columns, schema=schema)


_CACHE: dict[tuple, Predictor] = {}
_CACHE_LOCK = threading.Lock()


def cached_predictor(bundle_path: str, apply_transforms: bool, passthrough: Sequence[str]) -> Predictor:
    """One Predictor (and so one loaded model) per worker process, reused across tasks and batches."""
    key = (bundle_path, apply_transforms, tuple(passthrough))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Predictor(load_bundle(bundle_path), apply_transforms=apply_transforms, passthrough=passthrough)
        return _CACHE[key]


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
            raise BundleError(f"bundle {where}: model returned columns {sorted(raw)} but outputs declares {names}")
        columns = [raw[n] for n in names]
    else:
        array = _to_numpy(raw)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise BundleError(f"bundle {where}: model returned an array of shape {array.shape}; expected (rows, outputs)")
        if len(names) == 1 and pa.types.is_list(schema.field(0).type) and array.shape[1] != 1:
            columns = [list(array)]  # one embedding column: each row is a vector
        elif array.shape[1] != len(names):
            raise BundleError(
                f"bundle {where}: model returned {array.shape[1]} output columns but outputs declares {len(names)} ({', '.join(names)})"
            )
        else:
            columns = [array[:, i] for i in range(array.shape[1])]
    arrays = []
    for field, values in zip(schema, columns):
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
    try:
        return values.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BundleError(f"bundle {where}: output {field.name} is {values.type}, cannot become {field.type}: {exc}") from None
