"""scikit-learn models saved with joblib: ``method = "predict"`` or ``"predict_proba"``.

What the model is handed follows the bundle's ``input``:

- ``matrix``: a DataFrame of float64 columns named as the features (null -> NaN), built from one
  C-ordered (rows, features) array, so ``np.asarray(frame)`` is that array again;
- ``dataframe``: the features with their own types (``FeatureBatch.dataframe``): strings,
  dates and nulls as pandas has them, for a Pipeline whose ColumnTransformer encodes them;
- ``auto`` (the default): ``dataframe`` for a model fitted on a DataFrame (it has
  ``feature_names_in_``) when a feature is not a number, else ``matrix``, which a model fitted on
  numbers has always been handed (so its last bits do not move).

The choice depends on the model and the column types only, never on a batch's rows, so it is the
same for every batch on every backend.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from common.errors import BundleError
from common.model.handler import ModelHandler
from common.model.kinds._shared import artifact_error

#: the distributions whose versions can change this kind's results (a parity certificate records them)
LIBRARIES = ("scikit-learn",)


class SklearnHandler(ModelHandler):
    """Feeds the model the features as a DataFrame: float64 columns, or typed (``input``)."""

    methods = ("predict", "predict_proba")
    # A DataFrame model takes strings and dates: the types are checked on the preflight batch.
    numeric_features = False

    def load_model(self) -> Any:
        import joblib

        try:
            model = joblib.load(self.bundle.artifact)
        except Exception as exc:  # joblib raises many types for a damaged file
            raise artifact_error(self.bundle, exc) from None
        if not hasattr(model, self.bundle.method):
            raise BundleError(f"bundle {self.bundle.path}: model has no method {self.bundle.method}")
        names = getattr(model, "feature_names_in_", None)
        if names is not None and list(names) != list(self.bundle.features):
            raise BundleError(
                f'bundle {self.bundle.path}: field "features": the model was fitted on columns '
                f"{list(names)} but the bundle lists {list(self.bundle.features)}"
            )
        return model

    def takes_dataframe(self, batch, model) -> bool:
        """Whether ``model`` gets the typed frame for this batch's column types (see the module)."""
        if self.bundle.input != "auto":
            return self.bundle.input == "dataframe"
        if getattr(model, "feature_names_in_", None) is None:
            return False
        return not all(_is_number(batch.arrow_type(n)) for n in self.bundle.features)

    def run_inference(self, batch, model):
        names = list(self.bundle.features)
        if self.takes_dataframe(batch, model):
            frame = batch.dataframe(names)
        else:
            try:
                frame = batch.pandas(names)
            except BundleError as exc:
                raise BundleError(
                    f"bundle {self.bundle.path}: {exc}; this model takes a float matrix "
                    '(input = "dataframe" in bundle.toml hands a Pipeline the typed columns)'
                ) from None
        if self.bundle.method == "predict":
            return model.predict(frame)
        proba = model.predict_proba(frame)
        # A binary classifier that declares one output gives the positive class alone.
        if proba.ndim == 2 and proba.shape[1] == 2 and len(self.bundle.outputs) == 1:
            return proba[:, 1]
        return proba


def _is_number(typ: pa.DataType) -> bool:
    return (
        pa.types.is_integer(typ)
        or pa.types.is_floating(typ)
        or pa.types.is_boolean(typ)
        or (pa.types.is_decimal(typ))
    )
