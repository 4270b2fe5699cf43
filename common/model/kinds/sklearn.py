"""scikit-learn models saved with joblib: ``method = "predict"`` or ``"predict_proba"``."""

from __future__ import annotations

from typing import Any

from common.errors import BundleError
from common.model.handler import ModelHandler
from common.model.kinds._shared import artifact_error

#: the distributions whose versions can change this kind's results (a parity certificate records them)
LIBRARIES = ("scikit-learn",)


class SklearnHandler(ModelHandler):
    """Feeds the model a float64 DataFrame of the features (null -> NaN), named as in training."""

    methods = ("predict", "predict_proba")
    numeric_features = True

    def load_model(self) -> Any:
        import joblib

        try:
            model = joblib.load(self.bundle.artifact)
        except Exception as exc:  # joblib raises many types for a damaged file
            raise artifact_error(self.bundle, exc) from None
        if not hasattr(model, self.bundle.method):
            raise BundleError(f"bundle {self.bundle.path}: model has no method {self.bundle.method}")
        return model

    def run_inference(self, batch, model):
        frame = batch.pandas(list(self.bundle.features))
        if self.bundle.method == "predict":
            return model.predict(frame)
        proba = model.predict_proba(frame)
        # A binary classifier that declares one output gives the positive class alone.
        if proba.ndim == 2 and proba.shape[1] == 2 and len(self.bundle.outputs) == 1:
            return proba[:, 1]
        return proba
