"""Builds the images example: a small CNN trained on scikit-learn's 8x8 digits (shipped with the package).

75% of the 1,797 images train the CNN, 25% are held out for accuracy. The prediction input draws
from the held-out images only (with replacement, plus light pixel noise so that rows differ), so
``size`` can exceed the data set for benchmarks while the predictions stay honest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from common.spec.toml import write_toml
from examples._torch_common import (
    Stopwatch,
    build_cli,
    copy_handler,
    prepare_dirs,
    seed_everything,
    training_threads,
    write_input,
)
from examples.images.digits_handler import DigitsCNN

HERE = Path(__file__).resolve().parent
HANDLER = HERE / "digits_handler.py"
DEFAULT_SIZE = 20_000
PIXEL_SCALE = 16.0  # load_digits pixels are 0..16
INPUT_NOISE = 0.5  # std of the noise added to prediction inputs, on the 0..16 scale
EPOCHS = 40


def train(images: np.ndarray, labels: np.ndarray) -> DigitsCNN:
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            rows = order[start : start + 64]
            loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains the CNN, writes ``model/`` (state dict + handler + bundle.toml) and ``data/input.parquet``.

    Args:
        size: images in the prediction input (default 20,000); training does not depend on it.
        seed: seeds the split, the training and the input sampling.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    size = DEFAULT_SIZE if size is None else size
    rng = seed_everything(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    digits = load_digits()
    pixels = digits.images.astype(np.float32)  # (n, 8, 8), 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, digits.target.astype(np.int64), test_size=0.25, random_state=seed, stratify=digits.target
    )
    to_model = lambda imgs: (imgs / np.float32(PIXEL_SCALE))[:, None]  # noqa: E731 - the handler's scaling
    with training_threads(), Stopwatch() as clock:
        model = train(to_model(x_train), y_train)
    with torch.inference_mode():
        accuracy = float((model(torch.from_numpy(to_model(x_test))).argmax(1).numpy() == y_test).mean())

    torch.save(model.state_dict(), model_dir / "model.pt")
    copy_handler(HANDLER, model_dir)
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "images",
            "description": "small CNN on scikit-learn's 8x8 digits; the image is a list column of 64 pixels",
            "kind": "python",
            "entrypoint": "digits_handler:DigitsHandler",
            "artifact": "model.pt",
            "features": ["pixels"],
            "batch_size": 256,
            "device": "auto",
            "outputs": {"label": "int64", "probability": "float64"},
            "options": {"pixel_scale": PIXEL_SCALE},
        },
    )

    rows = rng.integers(len(x_test), size=size)
    noisy = np.clip(x_test[rows] + rng.normal(0.0, INPUT_NOISE, size=(size, 8, 8)), 0.0, PIXEL_SCALE).astype(
        np.float32
    )
    write_input(
        pa.table(
            {
                "id": pa.array(np.arange(size, dtype=np.int64)),
                "pixels": pa.FixedSizeListArray.from_arrays(pa.array(noisy.reshape(-1)), 64).cast(
                    pa.list_(pa.float32())
                ),
                "target": pa.array(y_test[rows]),
            }
        ),
        data_dir,
    )
    return {
        "train_seconds": clock.seconds,
        "holdout_accuracy": accuracy,
        "rows": size,
        "train_images": len(x_train),
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
