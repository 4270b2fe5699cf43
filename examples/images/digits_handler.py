"""A small CNN for 8x8 digit images read from a list column (a ``python`` bundle handler).

This file is copied into the bundle folder; it holds the architecture, so the bundle loads without
the training code. The image arrives as one list column (64 pixel values per row, row-major, on
scikit-learn's 0-16 scale): the handler flattens the Arrow list array without a Python loop,
reshapes it to (rows, 1, 8, 8) and copies it to the model's device through pinned memory on CUDA.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from common.errors import BundleError, InputError
from common.model import ModelHandler

SIDE = 8


class DigitsCNN(nn.Module):
    """Two 3x3 conv layers, one 2x2 max-pool, two linear layers: ~40k parameters."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, classes)
        )

    def forward(self, images):
        return self.classifier(self.features(images))


def pixels_to_images(pixels: pa.Array, name: str, scale: float) -> np.ndarray:
    """A list<float> Arrow array of 64 values per row -> float32 (rows, 1, 8, 8), divided by ``scale``.

    A null image or one with another number of pixels is an InputError: there is no honest
    prediction for it, and a silent zero image would be classified as something.
    """
    typ = pixels.type
    if not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)):
        raise InputError(
            f'column "{name}" is {pixels.type}; expected a list of {SIDE * SIDE} numbers per row'
        )
    if pixels.null_count:
        raise InputError(f'column "{name}" has {pixels.null_count} null images')
    lengths = pc.list_value_length(pixels).to_numpy(zero_copy_only=False)
    if (lengths != SIDE * SIDE).any():
        row = int(np.flatnonzero(lengths != SIDE * SIDE)[0])
        raise InputError(f'column "{name}": row {row} has {lengths[row]} pixels, expected {SIDE * SIDE}')
    values = pixels.flatten()  # respects the array's offset, unlike .values
    if values.null_count:
        raise InputError(f'column "{name}" has null pixel values')
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return (flat / np.float32(scale)).reshape(len(pixels), 1, SIDE, SIDE)


class DigitsHandler(ModelHandler):
    """Outputs ``label`` (the most probable digit) and ``probability`` (its softmax probability)."""

    def load_model(self):
        model = DigitsCNN()
        try:
            model.load_state_dict(torch.load(self.bundle.artifact, map_location="cpu", weights_only=True))
        except Exception as exc:  # a damaged file or another architecture
            raise BundleError(
                f"bundle {self.bundle.path}: cannot load {self.bundle.artifact.name}: {exc}"
            ) from None
        return model.to(self.device).eval()

    def run_inference(self, batch, model):
        name = self.bundle.features[0]
        images = torch.from_numpy(
            pixels_to_images(batch.arrow(name), name, float(self.bundle.options["pixel_scale"]))
        )
        if torch.device(self.device).type == "cuda":
            images = images.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode():
            probabilities = model(images).softmax(dim=1)
            best, label = probabilities.max(dim=1)
        return {"label": label, "probability": best.double()}
