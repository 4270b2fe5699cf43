"""LightGBM models saved as text (``Booster.save_model``): ``method = "predict"`` or ``"raw"``.

The model sees the features as a float64 matrix in ``features`` order, null -> NaN (LightGBM's
missing value): LightGBM compares features with float64 thresholds learnt from float64 training
data, so rounding them to float32 first could send a row down another branch. A row's prediction
never depends on the other rows of its batch. LightGBM's CPU build has no CUDA predictor, so the
model always runs on the CPU (the transforms still run on the replica's device).
"""

from __future__ import annotations

import re
from typing import Any

from common.model.handler import ModelHandler
from common.model.kinds._shared import (
    artifact_error,
    check_feature_names,
    check_numeric_outputs,
    import_library,
    worker_threads,
)

#: the distributions whose versions can change this kind's results (a parity certificate records them)
LIBRARIES = ("lightgbm",)

METHODS = ("predict", "raw")
_DEFAULT_NAME = re.compile(r"Column_\d+")


class LightGBMHandler(ModelHandler):
    """Runs ``lightgbm.Booster.predict`` on the bundle's float64 feature matrix."""

    methods = METHODS
    numeric_features = True

    def validate(self) -> None:
        super().validate()  # method
        self._checked_booster()

    def __init__(self, bundle, device="cpu"):
        super().__init__(bundle, "cpu")  # see the module docstring: the trees run on the host

    def load_model(self) -> Any:
        return self._checked_booster()

    def run_inference(self, batch, booster):
        features = batch.numpy(list(self.bundle.features))
        return booster.predict(features, raw_score=self.bundle.method == "raw", num_threads=worker_threads())

    def _checked_booster(self):
        """Loads the model and checks it against the bundle: method, feature names and count, and
        the number of columns it predicts against the declared outputs."""
        import numpy as np

        lightgbm = import_library(self.bundle, "lightgbm", "lightgbm")

        text = self._model_text()
        try:
            booster = lightgbm.Booster(model_str=text)
        except lightgbm.basic.LightGBMError as exc:
            raise artifact_error(self.bundle, exc) from None
        names = booster.feature_name()
        check_feature_names(
            self.bundle, names, booster.num_feature(), all(_DEFAULT_NAME.fullmatch(n) for n in names)
        )
        probe = np.full((1, booster.num_feature()), np.nan)
        shape = booster.predict(probe, raw_score=self.bundle.method == "raw", num_threads=1).shape
        objective = re.search(r"^objective=(\S+)", text, re.M)
        classes = booster.num_model_per_iteration()
        what = f"objective {objective.group(1) if objective else '?'}" + (
            f" with {classes} classes" if classes > 1 else ""
        )
        check_numeric_outputs(
            self.bundle,
            1 if len(shape) == 1 else int(np.prod(shape[1:])),
            f"{what}, method {self.bundle.method}",
        )
        return booster

    def _model_text(self) -> str:
        """The model file's text, checked for truncation first: LightGBM 4 locates each tree by the
        byte sizes in its header's ``tree_sizes`` and reads past the end of a truncated file,
        which aborts the whole process instead of raising."""
        try:
            data = self.bundle.artifact.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise artifact_error(self.bundle, exc) from None
        if not text.startswith("tree\n"):
            raise artifact_error(
                self.bundle, ValueError("not a LightGBM model text file (it must start with 'tree')")
            )
        sizes = re.search(rb"^tree_sizes=([\d ]*)$", data, re.M)
        start = data.find(b"\nTree=") + 1
        if sizes and start:
            for size in (int(s) for s in sizes.group(1).split()):
                if not data.startswith(b"Tree=", start):
                    break
                start += size
            intact = data.startswith(b"end of trees", start)
        else:
            intact = b"\nend of trees" in data
        if not intact:
            raise artifact_error(
                self.bundle, ValueError("the file is truncated or damaged (its trees end early)")
            )
        return text
