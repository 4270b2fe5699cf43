"""XGBoost Boosters saved as ``.json`` or ``.ubj``: ``method = "predict"`` or ``"margin"``.

The model sees the features as one float32 matrix in ``features`` order, null -> NaN (XGBoost's
missing value), exactly what XGBoost itself turns any input into. A row's prediction is a walk
down each tree, so it never depends on the other rows of its batch. On a CUDA replica the Booster
predicts with ``device = "cuda:N"``; the CPU wheel (``xgboost-cpu``) has no CUDA, see
``cuda_unavailable``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from common.model.handler import ModelHandler
from common.model.kinds._shared import (
    artifact_error,
    bundle_error,
    check_feature_names,
    check_numeric_outputs,
    cuda_unavailable,
    device_index,
    import_library,
    worker_threads,
)

#: the distributions whose versions can change this kind's results (a parity certificate records them)
#: (the CPU-only and the full build of one module: whichever is installed is recorded)
LIBRARIES = ("xgboost", "xgboost-cpu")

METHODS = ("predict", "margin")


class XGBoostHandler(ModelHandler):
    """Runs ``Booster.inplace_predict`` on the bundle's float32 feature matrix."""

    methods = METHODS
    numeric_features = True

    def validate(self) -> None:
        super().validate()  # method
        self._checked_booster()

    def __init__(self, bundle, device="cpu"):
        super().__init__(bundle, device)
        if torch.device(device).type == "cuda":  # decided here, so the executors report it
            xgboost = import_library(bundle, "xgboost", "xgboost-cpu (xgboost on GPU machines)")
            if not xgboost.build_info().get("USE_CUDA"):
                hint = "the xgboost-cpu wheel; make venv MODEL_EXTRAS=gpu installs xgboost"
                self.device = cuda_unavailable(bundle, str(device), "xgboost", hint)

    def load_model(self) -> Any:
        booster = self._checked_booster()
        booster.set_param({"nthread": worker_threads()})
        if torch.device(self.device).type == "cuda":
            booster.set_param({"device": f"cuda:{device_index(self.device)}"})
        return booster

    def run_inference(self, batch, booster):
        features = batch.matrix(list(self.bundle.features), dtype=torch.float32)
        predict_type = "margin" if self.bundle.method == "margin" else "value"
        if torch.device(self.device).type == "cuda":
            # A host array into a GPU Booster: through a DMatrix, which XGBoost copies to the GPU
            # (inplace_predict would warn and do the same; a GPU array out needs cupy).
            import xgboost

            matrix = xgboost.DMatrix(
                features.cpu().numpy(), missing=np.nan, feature_names=booster.feature_names
            )
            return booster.predict(matrix, output_margin=predict_type == "margin")
        return booster.inplace_predict(features.numpy(), missing=np.nan, predict_type=predict_type)

    def _checked_booster(self):
        """Loads the Booster and checks it against the bundle: method, feature names and count,
        feature types, and the number of columns it predicts against the declared outputs."""
        xgboost = import_library(self.bundle, "xgboost", "xgboost-cpu (xgboost on GPU machines)")

        try:
            booster = xgboost.Booster(model_file=str(self.bundle.artifact))
        except (xgboost.core.XGBoostError, OSError, ValueError) as exc:
            raise artifact_error(self.bundle, exc) from None
        check_feature_names(self.bundle, booster.feature_names, booster.num_features())
        categorical = [
            n for n, t in zip(self.bundle.features, booster.feature_types or [], strict=False) if t == "c"
        ]
        if categorical:
            raise bundle_error(
                self.bundle,
                "features",
                f"the model has categorical features ({', '.join(categorical)}); "
                "the xgboost kind feeds numbers only: "
                "encode them with a transform (string_index) and retrain",
            )
        probe = np.full((1, booster.num_features()), np.nan, dtype=np.float32)
        predict_type = "margin" if self.bundle.method == "margin" else "value"
        shape = booster.inplace_predict(probe, predict_type=predict_type).shape
        learner = json.loads(booster.save_config())["learner"]
        objective = learner["objective"]["name"]
        classes = int(learner["learner_model_param"].get("num_class", "0"))
        what = (
            f"objective {objective}"
            + (f" with {classes} classes" if classes > 1 else "")
            + f", method {self.bundle.method}"
        )
        check_numeric_outputs(self.bundle, 1 if len(shape) == 1 else int(np.prod(shape[1:])), what)
        return booster
