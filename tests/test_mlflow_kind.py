"""``kind = "mlflow"`` against a real MLflow tracking server with a model registry (SQLite backend,
on 127.0.0.1, started and stopped here): registry models of the sklearn and XGBoost flavours give
on Spark, Ray and the reference what ``mlflow.pyfunc`` gives in-process; the driver pins the
version, and the content hash follows it; bad URIs, flavours and signatures are one line, exit 2."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.cli import main
from common.model.kinds import mlflow as mlflow_kind
from common.model.kinds import pin_remote_model
from common.run.runner import run_job
from common.spec.bundle import load_bundle
from common.spec.job import load_job
from common.spec.toml import write_toml
from tests.support import read_output

mlflow = pytest.importorskip("mlflow")

ROWS = 200
NUMBERS = ["f0", "f1", "f2", "f3"]
FEATURES = ["cat", *NUMBERS]
JOB = """\
[job]
key = "id"
[input]
path = "input.parquet"
[output]
path = "out"
passthrough = ["id"]
[model]
bundle = "{bundle}"
[ray]
concurrency = 1
"""


def rows(n: int, seed: int) -> pa.Table:
    """A string column and four floats, with nulls and NaN."""
    rng = np.random.default_rng(seed)
    columns = {"id": pa.array(np.arange(n, dtype=np.int64))}
    columns["cat"] = pa.array(rng.choice(["a", "b", "c"], n).tolist(), mask=rng.random(n) < 0.05)
    for i, name in enumerate(NUMBERS):
        values = rng.normal(i, 1, n)
        values[rng.random(n) < 0.05] = np.nan
        columns[name] = pa.array(values, mask=rng.random(n) < 0.05)
    return pa.table(columns)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real ``mlflow server`` (SQLite store, local artifacts) on loopback, with two registered
    models: ``sk`` (a Pipeline: one-hot + HistGradientBoosting) and ``xgb`` (a Booster, versions 1
    and 2, alias ``champion`` on 1). Yields the tracking URI; the server stops at the end."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"), start_new_session=True,
        # no job runner (five huey workers) and no telemetry: a registry is all the tests need
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # seconds on a loaded 2-CPU machine
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (root / "server.log").read_text()
            time.sleep(0.5)
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
        mlflow.set_tracking_uri(uri)
        _register_models()
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for key, value in locals().get("saved", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        mlflow.set_tracking_uri(None)


def _register_models() -> None:
    import mlflow.sklearn
    import mlflow.xgboost
    import xgboost
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = rows(1000, 1).to_pandas()
    target = np.nan_to_num(train["f0"]) + (train["cat"] == "b") - 0.5 * np.nan_to_num(train["f2"])
    pipeline = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["cat"]),
                        ("num", "passthrough", NUMBERS),
                    ]
                ),
            ),
            ("model", HistGradientBoostingRegressor(max_iter=30, random_state=0)),
        ]
    ).fit(train[FEATURES], target)
    signature = infer_signature(train[FEATURES], pipeline.predict(train[FEATURES]))
    with mlflow.start_run():  # so that runs:/<run id>/model names it too
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            registered_model_name="sk",
            serialization_format="cloudpickle",  # skops (the default) needs the full mlflow on workers
            pip_requirements=[],  # not inferred: that loads the model again in a subprocess
        )
    client = mlflow.MlflowClient()
    for rounds in (10, 20):  # version 1 and version 2
        booster = xgboost.train(
            {"objective": "reg:squarederror", "max_depth": 3, "nthread": 1, "seed": 0},
            xgboost.DMatrix(train[NUMBERS], label=target),
            num_boost_round=rounds,
        )
        signature = infer_signature(train[NUMBERS], booster.predict(xgboost.DMatrix(train[NUMBERS])))
        mlflow.xgboost.log_model(
            booster, name="model", signature=signature, registered_model_name="xgb", pip_requirements=[]
        )
    client.set_registered_model_alias("xgb", "champion", "1")


def _job(root: Path, name: str, spec: dict) -> Path:
    """A bundle ``name`` (kind mlflow, ``spec`` on top) and its job over the shared input."""
    if not (root / "input.parquet").exists():
        pq.write_table(rows(ROWS, 7), root / "input.parquet")
    (root / name).mkdir(exist_ok=True)
    write_toml(root / name / "bundle.toml", {"kind": "mlflow", "batch_size": 32, "device": "cpu", **spec})
    (root / f"{name}.toml").write_text(JOB.format(bundle=name))
    return root / f"{name}.toml"


def _in_process(uri: str, table: pa.Table, features: list[str]) -> np.ndarray:
    """The referee: the registry model loaded by MLflow itself, on the whole input as pandas has it."""
    return np.asarray(mlflow.pyfunc.load_model(uri).predict(table.to_pandas()[features]), dtype=np.float64)


CASES = {
    "sk": ({"model_uri": "models:/sk/1", "features": FEATURES, "outputs": {"y": "float64"}}, "models:/sk/1"),
    "xgb": (
        {"model_uri": "models:/xgb@champion", "features": NUMBERS, "outputs": {"y": "float32"}},
        "models:/xgb/1",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_registry_model_gives_pyfunc_answers_on_every_backend(name, registry, engines, tmp_path):
    spec, pinned = CASES[name]
    job = load_job(_job(tmp_path, name, spec))
    table = pq.read_table(tmp_path / "input.parquet")
    want = _in_process(pinned, table, spec["features"])
    for backend in ("reference", "spark", "ray"):
        run_job(replace(job, output_path=tmp_path / backend), backend)
        out = read_output(tmp_path / backend)
        assert out.column("id").to_pylist() == list(range(ROWS)), backend
        np.testing.assert_allclose(out.column("y").to_numpy(), want, rtol=1e-6, atol=1e-6, err_msg=backend)
    copy = tmp_path / name / ".mlflow"
    assert (copy / ".gitignore").read_text().endswith("*\n")
    assert '"version": "1"' in (copy / "pin.json").read_text()


def test_the_pinned_version_is_part_of_the_content_hash(registry, tmp_path):
    """Moving the alias is a new bundle for the certificate: the driver pins version 2, copies it
    and the hash changes; a worker reads the pin and never asks the server."""
    _job(tmp_path, "xgb", CASES["xgb"][0])
    bundle = load_bundle(tmp_path / "xgb")

    def driver_hash():  # what the runner and the certificate do: pin, then hash
        pin_remote_model(bundle)
        return bundle.content_hash()

    first = driver_hash()
    assert first == driver_hash()
    mlflow.MlflowClient().set_registered_model_alias("xgb", "champion", "2")
    try:
        mlflow_kind._RESOLVED.clear()  # a new driver process resolves again
        second = driver_hash()
        assert second != first
        assert sorted(p.name for p in (tmp_path / "xgb" / ".mlflow").iterdir()) == [
            ".gitignore",
            "pin.json",
            "xgb-v2",
        ]
        worker = mlflow_kind.MlflowHandler(bundle).load_model()
        frame = rows(5, 3).to_pandas()[NUMBERS]
        np.testing.assert_array_equal(
            worker.predict(frame), mlflow.pyfunc.load_model("models:/xgb/2").predict(frame)
        )
    finally:
        mlflow.MlflowClient().set_registered_model_alias("xgb", "champion", "1")
        mlflow_kind._RESOLVED.clear()


def _not_pyfunc(root: Path) -> dict:
    """The sklearn registry model, saved again without its pyfunc flavour (a flavour-only model)."""
    from mlflow.models import Model

    folder = Path(mlflow.artifacts.download_artifacts("models:/sk/1", dst_path=str(root / "download")))
    model = Model.load(str(folder))
    del model.flavors["python_function"]
    model.save(str(folder / "MLmodel"))
    shutil.move(str(folder), str(root / "bad" / "model"))
    return {"artifact": "model", "features": FEATURES, "outputs": {"y": "float64"}}


BAD = {
    "no-such-model": ({"model_uri": "models:/nope/1"}, ["model_uri", "models:/nope/1", "nope"]),
    "no-such-version": ({"model_uri": "models:/sk/9"}, ["model_uri", "models:/sk/9"]),
    "not-a-uri": (
        {"model_uri": "s3://bucket/model"},
        ["model_uri", "s3://bucket/model", "models:/name/version"],
    ),
    "signature": (
        {"model_uri": "models:/sk/1", "features": ["cat", "f0", "f1", "f2", "id"]},
        ['field "features"', "signature", "'f3'", "'id'"],
    ),
    "not-pyfunc": (_not_pyfunc, ["artifact", "python_function"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_model_is_one_line_exit_2_nothing_published(case, registry, tmp_path, capsys):
    spec, needles = BAD[case]
    (tmp_path / "bad").mkdir()
    spec = spec(tmp_path) if callable(spec) else {"features": FEATURES, "outputs": {"y": "float64"}, **spec}
    job = _job(tmp_path, "bad", spec)
    capsys.readouterr()  # what building the case printed
    code = main(["run", str(job), "--backend", "reference"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"bundle {tmp_path / 'bad'}" in err, err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "out").exists()


def test_a_run_uri_and_a_local_folder_score_alike(registry, tmp_path):
    """``runs:/<run>/model`` and the same model as an ``artifact`` folder give the same answers."""
    version = mlflow.MlflowClient().get_model_version("sk", "1")
    folder = Path(
        mlflow.artifacts.download_artifacts(f"runs:/{version.run_id}/model", dst_path=str(tmp_path / "d"))
    )
    (tmp_path / "folder").mkdir()
    shutil.move(str(folder), str(tmp_path / "folder" / "model"))
    outs = {}
    for name, spec in {
        "run": {"model_uri": f"runs:/{version.run_id}/model"},
        "folder": {"artifact": "model"},
    }.items():
        job = load_job(_job(tmp_path, name, {"features": FEATURES, "outputs": {"y": "float64"}, **spec}))
        run_job(replace(job, output_path=tmp_path / f"out-{name}"), "reference")
        outs[name] = read_output(tmp_path / f"out-{name}")
    assert outs["run"].equals(outs["folder"]) and outs["run"].num_rows == ROWS
    assert pd.Series(outs["run"].column("y").to_numpy()).notna().all()
