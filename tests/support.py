"""Test helpers shared by every suite: small real jobs (Parquet input, a trained scikit-learn bundle,
a job file), a python bundle that misbehaves on demand, the CLI in-process, and output readers."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.cli import main
from common.run.output import output_files
from common.spec.toml import write_toml

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
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "x1": pa.array(x1, mask=rng.random(rows) < 0.1),
            "x2": rng.normal(1.0, 2.0, rows),
            "cat": pa.array(rng.choice(["a", "b", "c", "zz"], rows).tolist(), mask=rng.random(rows) < 0.05),
        }
    )


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


def make_job(
    root: Path, rows: int = 500, files: int = 1, extra: str = "", method: str = "predict_proba"
) -> Path:
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
            pq.write_table(
                table.slice(bounds[i], bounds[i + 1] - bounds[i]), root / "input" / f"part-{i:03d}.parquet"
            )
        input_path = "input"
    write_bundle(root / "bundle", method=method)
    job = root / "job.toml"
    job.write_text(JOB.format(input=input_path, extra=extra))
    return job


def write_job(folder: Path, input_path: Path, bundle: Path, parity: str = "", passthrough=("id",)) -> Path:
    """A job file reading ``input_path`` with ``bundle``, keyed on ``id``, with a ``[parity]`` body."""
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""
[job]
key = "id"
[input]
path = {json.dumps(str(input_path))}
[output]
path = "out"
passthrough = {json.dumps(list(passthrough))}
[model]
bundle = {json.dumps(str(bundle))}
[ray]
concurrency = 1
[parity]
{parity}
"""
    (folder / "job.toml").write_text(text)
    return folder / "job.toml"


MISBEHAVING_HANDLER = '''\
import numpy as np

from common.errors import InputError
from common.model import ModelHandler


class Misbehaving(ModelHandler):
    """Returns x2, except for rows chosen by [options]: raise, or break the output contract."""

    def load_model(self):
        return None

    def run_inference(self, batch, model):
        ids = batch.numpy(["id"])[:, 0]
        x = batch.numpy(["x2"])[:, 0]
        mode = self.bundle.options["mode"]
        if mode == "raise_rows":
            bad = sorted(set(ids.astype(int)) & set(self.bundle.options["ids"]))
            if bad:  # a handler may flag a bad row with InputError too: still the row's fault
                raise (InputError if bad[0] % 2 == 0 else ValueError)(f"cannot score id {bad[0]}")
        elif (ids >= self.bundle.options.get("from_id", 0)).any():
            if mode == "wrong_rows":
                return x[:-1]
            if mode == "wrong_columns":
                return np.stack([x, x], axis=1)
        return x
'''


def write_python_bundle(folder: Path, **options) -> Path:
    """A ``python`` bundle whose handler misbehaves as ``options`` say (module name unique per
    bundle: Spark and Ray workers outlive a test and cache imported modules by name)."""
    folder.mkdir(parents=True)
    module = f"misbehaving_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(MISBEHAVING_HANDLER)
    write_toml(
        folder / "bundle.toml",
        {
            "kind": "python",
            "entrypoint": f"{module}:Misbehaving",
            "features": ["x2"],
            "batch_size": 64,
            "device": "cpu",
            "outputs": {"score": "float64"},
            "options": options,
        },
    )
    return folder


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """``batch-predict ARGS`` in this process: its exit code and its stderr, stripped."""
    code = main(list(args))
    return code, capsys.readouterr().err.strip()


def read_output(path: Path, key: str = "id") -> pa.Table:
    """An output folder's data files (or one Parquet file) as one table, sorted by ``key``."""
    files = output_files(path) if path.is_dir() else [path]
    return pa.concat_tables(pq.read_table(f) for f in files).sort_by(key)


ROWS = 300  # reliability_job: two input files of 150 rows; bundle batch_size 64


def reliability_job(
    root: Path, *, on_error: str = "fail", faults: str = "", bundle: dict | None = None
) -> Path:
    """``make_job`` with two input files, plus ``job.on_error``, a ``[faults]`` body and a python bundle."""
    job = make_job(root, rows=ROWS, files=2)
    text = job.read_text().replace('key = "id"\n', f'key = "id"\non_error = "{on_error}"\n', 1)
    if faults:
        text += f'\n[faults]\nmarker_dir = "markers"\n{faults}\n'
    if bundle is not None:
        write_python_bundle(root / "pybundle", **bundle)
        text = text.replace('bundle = "bundle"', 'bundle = "pybundle"')
    job.write_text(text)
    return job


def assert_failed_cleanly(code: int, err: str, out: Path, *needles: str) -> None:
    """Exit 2, one line naming what is at fault, no output published, no staging folder left.
    Progress lines (``progress: ...`` every 10 s of a run on stderr) may come before the error."""
    assert code == 2, err
    assert len([line for line in err.splitlines() if not line.startswith("progress: ")]) == 1, err
    for needle in needles:
        assert needle in err, err
    assert not out.exists() or (out / "keep.txt").is_file(), "a failed run published or removed output"
    assert not list(out.parent.glob(f".{out.name}.*")), list(out.parent.glob(f".{out.name}.*"))


@contextlib.contextmanager
def spark_ansi(spark, on: bool):
    """``spark.sql.ansi.enabled`` set to ``on`` for the block, then back to what it was (the
    test session's Spark is shared)."""
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", str(on).lower())
    try:
        yield spark
    finally:
        spark.conf.set("spark.sql.ansi.enabled", previous)
