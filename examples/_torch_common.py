"""Build-time helpers shared by the torch examples (tabular_torch, text_classification, generation, images).

Only ``build.py`` scripts import this: a bundle must load without the repository's example code,
so nothing in a bundle's handler module depends on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

# One thread on purpose: these models are tiny, so each op is microseconds of work, and a second
# OpenMP thread costs more in wake-ups than it saves (measured on 2 shared CPUs: an elementwise op
# on 100k floats took 30 us with 1 thread, 2-7 ms with 2 when the other core was busy).
TRAIN_THREADS = 1


def seed_everything(seed: int) -> np.random.Generator:
    """Seeds Python, NumPy and torch so that a build is reproducible; returns a NumPy generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@contextlib.contextmanager
def training_threads():
    """Runs the block with ``TRAIN_THREADS`` torch threads, then restores the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prepare_dirs(out_dir: Path) -> tuple[Path, Path]:
    """Empties and recreates ``<out_dir>/data`` and ``<out_dir>/model``; returns both."""
    data_dir, model_dir = out_dir / "data", out_dir / "model"
    for folder in (data_dir, model_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    return data_dir, model_dir


def write_input(table: pa.Table, data_dir: Path) -> Path:
    """Writes the prediction input as ``<data_dir>/input.parquet`` (what every job.toml reads)."""
    path = data_dir / "input.parquet"
    pq.write_table(table, path)
    return path


def copy_handler(source: Path, model_dir: Path) -> None:
    """Copies a committed handler module into the bundle, which must be self-contained."""
    shutil.copy2(source, model_dir / source.name)


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.perf_counter() - self._start, 3)


def build_cli(build: Callable[..., dict], description: str, default_dir: Path) -> None:
    """``python -m examples.<name>.build [--size N] [--seed S] [--out-dir DIR]``: builds, prints metrics."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--size", type=int, default=None, help="rows of prediction input (default: the example's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=default_dir, help="where data/ and model/ go")
    args = parser.parse_args()
    metrics = build(size=args.size, seed=args.seed, out_dir=args.out_dir)
    print(json.dumps(metrics, indent=1))
