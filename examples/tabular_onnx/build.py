"""Builds the tabular_onnx example: the tabular_torch churn MLP exported to ONNX, run by onnxruntime.

Same data, transforms and training as ``examples.tabular_torch`` (imported from there); the model
is exported with ``torch.onnx.export`` with a dynamic batch dimension. It takes the float32
feature matrix and returns two outputs, ``score`` (float64) and ``label`` (int64), which the
bundle maps by name with ``[options] outputs``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from common.spec.toml import write_toml
from examples._torch_common import (
    Stopwatch,
    build_cli,
    prepare_dirs,
    seed_everything,
    training_threads,
    write_input,
)
from examples.tabular_torch.build import (
    FEATURES,
    HOLDOUT_ROWS,
    TRAIN_ROWS,
    customers,
    features,
    fit_transforms,
    train,
)

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 100_000


def export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """``torch.onnx.export`` (the torch.export-based exporter) with the batch dimension dynamic."""
    batch = torch.export.Dim("batch")
    # The exporter's chatter: deprecation warnings about pytree internals, and a logged line per
    # torchvision operator it skips because torchvision is not installed (we use none).
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["features"],
            output_names=["score", "label"],
            dynamic_shapes={"x": {0: batch}},
            verbose=False,
        )
    registration.setLevel(level)


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains the MLP as tabular_torch does, exports it, writes ``model/`` and ``data/``.

    Args:
        size: rows in the prediction input (default 100,000); training does not depend on it.
        seed: seeds the data and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    import onnxruntime

    size = DEFAULT_SIZE if size is None else size
    rng = seed_everything(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    train_table, holdout_table = customers(rng, TRAIN_ROWS), customers(rng, HOLDOUT_ROWS)
    transforms = fit_transforms(train_table)
    labels = torch.tensor(train_table.column("churned").to_numpy(), dtype=torch.float32)
    with training_threads(), Stopwatch() as clock:
        model = train(features(train_table, transforms), labels)
    holdout = features(holdout_table, transforms)
    with Stopwatch() as export_clock:
        export(model, holdout[:8], model_dir / "model.onnx")
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    score, label = session.run(None, {"features": holdout.numpy()})
    with torch.inference_mode():
        expected = model(holdout)
    accuracy = float((label == holdout_table.column("churned").to_numpy()).mean())

    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "tabular_onnx",
            "description": "the tabular_torch churn MLP exported to ONNX, with its [[transforms]]",
            "kind": "onnx",
            "artifact": "model.onnx",
            "features": FEATURES,
            "batch_size": 4096,
            "device": "auto",
            "outputs": {"score": "float64", "label": "int64"},
            "options": {"outputs": ["score", "label"]},
            "transforms": transforms,
        },
    )
    write_input(
        customers(np.random.default_rng(seed + 1), size, with_legacy_plan=True).append_column(
            "id", pa.array(np.arange(size, dtype=np.int64))
        ),
        data_dir,
    )
    return {
        "train_seconds": clock.seconds,
        "export_seconds": export_clock.seconds,
        "holdout_accuracy": accuracy,
        "onnx_vs_torch_max_abs": float(np.abs(score - expected["score"].numpy()).max()),
        "rows": size,
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
