"""ONNX models run by onnxruntime: one float32 input of shape (rows, len(features)).

``[options] outputs = ["name", ...]`` maps the model's outputs, in order, to the declared outputs
(one column each; an (n, k) output fills a ``list<...>`` column). Without it the first output's
columns are the declared outputs. The CUDA provider is used when the replica's device is CUDA
and onnxruntime has it (``onnxruntime-gpu``).

Batch invariance: onnxruntime's CPU matrix products take other code paths for some row counts
(a one-row product, or an odd last row, is summed in another order and can differ in the last
bit), so a row's output would depend on how many rows share its batch. Every ``session.run``
therefore gets exactly ``[options] rows_per_run`` rows (default 256; the last run of a batch is
filled up by repeating its last row, and the filler's outputs are dropped). A model exported with
a fixed batch size runs that many rows each time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from common.model.handler import ModelHandler
from common.model.kinds._shared import (
    artifact_error,
    bundle_error,
    check_numeric_outputs,
    cuda_unavailable,
    device_index,
    import_library,
    worker_threads,
)

#: the distributions whose versions can change this kind's results (a parity certificate records them)
#: (the CPU and the GPU build of one module: whichever is installed is recorded)
LIBRARIES = ("onnxruntime", "onnxruntime-gpu")

DEFAULT_ROWS_PER_RUN = 256
OPTIONS = ("outputs", "rows_per_run")


class OnnxHandler(ModelHandler):
    """Runs an ``onnxruntime.InferenceSession`` on the bundle's float32 feature matrix."""

    numeric_features = True

    def validate(self) -> None:
        self._plan(self._session(["CPUExecutionProvider"], threads=1))

    def __init__(self, bundle, device="cpu"):
        super().__init__(bundle, device)
        self.providers: list = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda":  # decided here, so the executors report it
            onnxruntime = import_library(
                bundle, "onnxruntime", "onnxruntime (onnxruntime-gpu on GPU machines)"
            )
            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                self.providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_index(device)}))
            else:
                hint = "no CUDAExecutionProvider; make venv MODEL_EXTRAS=gpu installs onnxruntime-gpu"
                self.device = cuda_unavailable(bundle, str(device), "onnxruntime", hint)

    def load_model(self) -> Any:
        session = self._session(self.providers, threads=worker_threads())
        return session, self._plan(session)

    def run_inference(self, batch, model):
        session, (input_name, output_names, rows_per_run) = model
        features = batch.matrix(list(self.bundle.features), dtype=torch.float32).cpu().numpy()
        n = len(features)
        padded = -(-n // rows_per_run) * rows_per_run
        if padded != n:  # fill the last run with copies of the last row; their outputs are dropped
            features = np.concatenate([features, np.repeat(features[-1:], padded - n, axis=0)])
        runs = [
            session.run(output_names, {input_name: features[start : start + rows_per_run]})
            for start in range(0, padded, rows_per_run)
        ]
        results = [np.concatenate([run[i] for run in runs])[:n] for i in range(len(output_names))]
        if "outputs" not in self.bundle.options:
            return results[0]  # its columns are the declared outputs (checked in _plan)
        return {name: _column(values) for name, values in zip(self.bundle.outputs, results, strict=True)}

    def _session(self, providers: list, threads: int):
        onnxruntime = import_library(
            self.bundle, "onnxruntime", "onnxruntime (onnxruntime-gpu on GPU machines)"
        )

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
        try:
            return onnxruntime.InferenceSession(str(self.bundle.artifact), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf / InvalidGraph types
            raise artifact_error(self.bundle, exc) from None

    def _plan(self, session) -> tuple[str, list[str], int]:
        """Checks the model against the bundle; returns (input name, output names, rows per run)."""
        unknown = sorted(set(self.bundle.options) - set(OPTIONS))
        if unknown:
            raise bundle_error(
                self.bundle, f"options.{unknown[0]}", f"unknown option; valid: {', '.join(OPTIONS)}"
            )
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise bundle_error(
                self.bundle,
                "artifact",
                f"the model has {len(inputs)} inputs ({names}); the onnx kind feeds one",
            )
        model_input = inputs[0]
        if model_input.type != "tensor(float)" or len(model_input.shape) != 2:
            raise bundle_error(
                self.bundle,
                "artifact",
                f"the model's input {model_input.name} is {model_input.type} of shape {model_input.shape}; "
                "the onnx kind feeds float32 of shape (rows, features)",
            )
        rows, width = model_input.shape
        if isinstance(width, int) and width != len(self.bundle.features):
            raise bundle_error(
                self.bundle,
                "features",
                f"the model takes {width} features but the bundle lists {len(self.bundle.features)}",
            )
        rows_per_run = self.bundle.options.get("rows_per_run", DEFAULT_ROWS_PER_RUN)
        if not isinstance(rows_per_run, int) or isinstance(rows_per_run, bool) or rows_per_run < 1:
            raise bundle_error(
                self.bundle, "options.rows_per_run", f"must be a positive integer, got {rows_per_run!r}"
            )
        if isinstance(rows, int):
            rows_per_run = rows  # exported with a fixed batch size

        by_name = {o.name: o for o in session.get_outputs()}
        wanted = self.bundle.options.get("outputs")
        if wanted is None:
            first = session.get_outputs()[0]
            columns = first.shape[1] if len(first.shape) == 2 else 1
            if not isinstance(columns, int) or len(first.shape) > 2:
                raise bundle_error(
                    self.bundle,
                    "outputs",
                    f"the model's first output {first.name} has shape {first.shape}; "
                    "map outputs by name with "
                    "[options] outputs = [...]",
                )
            check_numeric_outputs(self.bundle, columns, f"output {first.name} of shape {first.shape}")
            return model_input.name, [first.name], rows_per_run
        if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
            raise bundle_error(self.bundle, "options.outputs", "must be a list of the model's output names")
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise bundle_error(
                self.bundle,
                "options.outputs",
                f"the model has no output {missing[0]!r}; it has {', '.join(by_name)}",
            )
        if len(wanted) != len(self.bundle.outputs):
            raise bundle_error(
                self.bundle,
                "options.outputs",
                f"maps {len(wanted)} model output(s) but outputs declares {len(self.bundle.outputs)} "
                f"({', '.join(self.bundle.outputs)})",
            )
        for (name, typ), source in zip(self.bundle.outputs.items(), wanted, strict=True):
            shape = by_name[source].shape
            vector = len(shape) == 2 and shape[1] != 1
            if len(shape) > 2 or vector != pa.types.is_list(typ):
                kind = "a list<...> column" if vector else "a scalar column"
                raise bundle_error(
                    self.bundle,
                    f"outputs.{name}",
                    f"is {typ} but the model's output {source} has shape {shape}, which fills {kind}",
                )
        return model_input.name, list(wanted), rows_per_run


def _column(values: np.ndarray) -> Any:
    """One model output as one column: (n,) or (n, 1) as scalars, (n, k) as a list per row."""
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim == 2:
        return list(values)
    return values
