"""A scikit-learn Pipeline over typed columns (``kind = "sklearn"``, ``input = "dataframe"``): the
sklearn_pipeline example's ColumnTransformer + OneHotEncoder + GradientBoosting on string, numeric
and date columns gives on Spark, Ray and the reference what the Pipeline gives on
``pandas.read_parquet`` of the input, whatever the batch cut and however an engine carries a column."""

from __future__ import annotations

from dataclasses import replace

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.cli import main
from common.model.features import FeatureBatch
from common.model.predictor import Predictor
from common.run.runner import run_job
from common.spec.bundle import load_bundle
from common.spec.job import load_job
from examples.build import EXAMPLES_DIR
from examples.sklearn_pipeline.build import FEATURES, build
from tests.support import read_output

ROWS = 400


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sklearn_pipeline")
    (folder / "job.toml").write_text((EXAMPLES_DIR / "sklearn_pipeline" / "job.toml").read_text())
    build(ROWS, out_dir=folder)
    return folder


def pandas_scores(folder) -> np.ndarray:
    """The referee: the Pipeline on the input as pandas reads it, all rows at once."""
    frame = pd.read_parquet(folder / "data" / "input.parquet")
    return joblib.load(folder / "model" / "model.joblib").predict_proba(frame[FEATURES])[:, 1]


def test_pipeline_gives_pandas_answers_on_every_backend(example, engines, tmp_path):
    """One job per backend; each output is the Pipeline's own answer to the bit (so parity is exact)."""
    job = load_job(example / "job.toml")
    want = pandas_scores(example)
    for backend in ("reference", "spark", "ray"):
        run_job(replace(job, output_path=tmp_path / backend), backend)
        out = read_output(tmp_path / backend)
        assert out.column("id").to_pylist() == list(range(ROWS)), backend
        np.testing.assert_array_equal(out.column("score").to_numpy(), want, err_msg=backend)


def test_a_rows_score_does_not_depend_on_its_batch(example):
    predictor = Predictor(load_bundle(example / "model"), passthrough=["id"])
    table = pq.read_table(example / "data" / "input.parquet")
    whole = predictor.predict(table)
    for size in (1, 7, 64):
        parts = pa.concat_tables(predictor.predict(table.slice(i, size)) for i in range(0, ROWS, size))
        assert parts.equals(whole), f"batches of {size}"


def test_every_way_an_engine_carries_a_column_gives_one_frame():
    """Spark hands strings as large_string, decodes dictionaries, puts timestamps in its session zone
    and may narrow integers; the model still sees one frame: same dtypes, values and memory order."""
    plain = pa.table(
        {
            "s": pa.array(["a", None, "b"]),
            "i": pa.array([1, 2, 3], pa.int64()),
            "n": pa.array([1, None, 3], pa.int64()),
            "x": pa.array([0.5, float("nan"), None]),
            "d": pa.array([0, None, 2], pa.date32()),
            "t": pa.array([0, 1, None], pa.timestamp("us", "UTC")),
        }
    )
    carried = pa.table(
        {
            "s": pa.array(["a", None, "b"]).dictionary_encode(),
            "i": pa.array([1, 2, 3], pa.int32()),
            "n": pa.array([1, None, 3], pa.int32()),
            "x": pa.array([0.5, float("nan"), None]),
            "d": pa.array([0, None, 2], pa.date32()),
            "t": pa.array([0, 1, None], pa.timestamp("us", "UTC")).cast(pa.timestamp("us", "Europe/Paris")),
        }
    )
    names = plain.column_names
    want = plain.to_pandas()  # what pandas.read_parquet gives
    for table in (plain, carried):
        frame = FeatureBatch(table).dataframe(names)
        pd.testing.assert_frame_equal(frame, want)
        assert np.asarray(frame[["x", "n"]]).flags.f_contiguous  # pandas' column blocks: F order
    large = pa.table({"s": plain.column("s").cast(pa.large_string())})
    pd.testing.assert_frame_equal(FeatureBatch(large).dataframe(["s"]), want[["s"]])


def test_a_string_column_into_a_matrix_model_is_one_line(example, tmp_path, capsys):
    """``input = "matrix"`` keeps the float matrix: a string feature is exit 2 and names the fix."""
    import shutil

    shutil.copytree(example, tmp_path / "ex")
    spec = tmp_path / "ex" / "model" / "bundle.toml"
    spec.write_text(spec.read_text().replace('input = "dataframe"', 'input = "matrix"'))
    code = main(["run", str(tmp_path / "ex" / "job.toml"), "--backend", "reference"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert 'column "merchant_cat" is string' in err and 'input = "dataframe"' in err, err
    assert not (tmp_path / "ex" / "out").exists()
