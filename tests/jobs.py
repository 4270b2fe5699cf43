"""Builds small, real jobs for tests: Parquet input, a trained scikit-learn bundle, a job file."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BUNDLE = """\
kind = "sklearn"
artifact = "model.joblib"
method = "{method}"
batch_size = {batch_size}
device = "cpu"
features = ["x1_filled", "x2_z", "cat_idx"]

[outputs]
{outputs}

[[transforms]]
op = "impute"
column = "x1"
output = "x1_filled"
value = 0.0

[[transforms]]
op = "standard_scale"
column = "x2"
output = "x2_z"
mean = 1.0
std = 2.0

[[transforms]]
op = "string_index"
column = "cat"
output = "cat_idx"
vocabulary = ["a", "b", "c"]
"""

JOB = """\
[job]
key = "id"

[input]
path = "{input}"

[output]
path = "out"
passthrough = ["id", "cat"]

[model]
bundle = "bundle"

[ray]
concurrency = 1
{extra}
"""


def input_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "x1": pa.array(x1, mask=rng.random(rows) < 0.1),
        "x2": rng.normal(1.0, 2.0, rows),
        "cat": pa.array(rng.choice(["a", "b", "c", "zz"], rows).tolist(), mask=rng.random(rows) < 0.05),
    })


def write_bundle(folder: Path, method: str = "predict_proba", batch_size: int = 64) -> Path:
    """A logistic regression on three transformed features; outputs a score (or a label)."""
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] - 0.3 * X[:, 2] > 0).astype(np.int64)
    import pandas as pd

    frame = pd.DataFrame(X, columns=["x1_filled", "x2_z", "cat_idx"])
    joblib.dump(LogisticRegression().fit(frame, y), folder / "model.joblib")
    outputs = 'score = "float64"' if method == "predict_proba" else 'label = "int64"'
    (folder / "bundle.toml").write_text(BUNDLE.format(method=method, batch_size=batch_size, outputs=outputs))
    return folder


def make_job(root: Path, rows: int = 500, files: int = 1, extra: str = "", method: str = "predict_proba") -> Path:
    """Writes input (``files`` Parquet files), bundle and job.toml under ``root``; returns the job path."""
    root.mkdir(parents=True, exist_ok=True)
    table = input_table(rows)
    if files == 1:
        pq.write_table(table, root / "input.parquet")
        input_path = "input.parquet"
    else:
        (root / "input").mkdir()
        bounds = np.linspace(0, rows, files + 1).astype(int)
        for i in range(files):
            pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), root / "input" / f"part-{i:03d}.parquet")
        input_path = "input"
    write_bundle(root / "bundle", method=method)
    job = root / "job.toml"
    job.write_text(JOB.format(input=input_path, extra=extra))
    return job
