"""TorchScript models: input is the float32 feature matrix in ``features`` order, on the model's device."""

from __future__ import annotations

from typing import Any

from common.model.handler import ModelHandler
from common.model.kinds._shared import artifact_error

#: the distributions whose versions can change this kind's results (a parity certificate records them)
LIBRARIES = ("torch",)


class TorchScriptHandler(ModelHandler):
    """Runs a TorchScript module on the bundle's device; transforms already ran there as tensors."""

    numeric_features = True

    def load_model(self) -> Any:
        import torch

        try:
            model = torch.jit.load(str(self.bundle.artifact), map_location=self.device)
        except Exception as exc:  # torch raises RuntimeError or ValueError for a damaged archive
            raise artifact_error(self.bundle, exc) from None
        model.eval()
        return model

    def run_inference(self, batch, model):
        import torch

        features = batch.matrix(list(self.bundle.features), dtype=torch.float32)
        with torch.inference_mode():
            return model(features)
