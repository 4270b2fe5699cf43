"""Real Spark ML pipelines, imported through the CLI and proven against the original on every backend.

Each pipeline (``tests/spark_ml_pipelines.py``) is trained in Spark, saved, imported with
``batch-predict import-pipeline`` and scored with ``batch-predict parity``, which runs legacy (the
saved PipelineModel's own ``transform``), spark, ray and the reference and judges every side
against legacy: labels exactly, floats within the tolerances the importer declared. The largest
distances measured are printed (``-s``) and written to ``$BATCH_PREDICT_ULP_LOG`` when set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from common.cli import main
from tests import spark_ml_pipelines as pipelines
from tests.support import write_job

pytestmark = [pytest.mark.spark, pytest.mark.ray, pytest.mark.slow]

BUILDERS = {
    "gbt_breast_cancer": pipelines.gbt_breast_cancer,
    "rf_diabetes": pipelines.rf_diabetes,
    "lr_digits": pipelines.lr_digits,
    "fraud": pipelines.fraud_pipeline,
}
LABELS = {"prediction", "digit"}


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("spark_ml_pipelines")
    return {name: build(spark, root) for name, build in BUILDERS.items()}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_imported_pipeline_matches_the_original_on_every_backend(name, trained, engines, tmp_path, capsys):
    case = trained[name]
    bundle = tmp_path / "bundle"
    assert main(["import-pipeline", str(case.pipeline), str(bundle)]) == 0, capsys.readouterr().err
    assert "imported" in capsys.readouterr().out
    job = write_job(tmp_path / "job", case.input, bundle, parity='label_columns = ["prediction"]')
    code = main(["parity", str(job), "--out", str(tmp_path / "parity")])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "parity" / "parity.json").read_text())
    assert report["reference"] == "legacy" and {s["name"] for s in report["sides"]} == {
        "legacy",
        "reference",
        "spark",
        "ray",
    }
    assert code == 0 and report["ok"], out
    measured: dict[str, dict] = {}
    for pair in report["pairs"]:
        for column in pair["columns"]:
            if column["name"] in LABELS:  # labels: equal on every row, bit for bit
                assert column["unequal"] == 0 and column["bit_identical"], (
                    pair["left"],
                    pair["right"],
                    column,
                )
            if pair["left"] == "legacy" and column["max_ulps"] is not None:
                entry = measured.setdefault(column["name"], {"max_ulps": 0, "max_abs": 0.0})
                entry["max_ulps"] = max(entry["max_ulps"], column["max_ulps"])
                entry["max_abs"] = max(entry["max_abs"], column["max_abs_diff"] or 0.0)
    rows = {s["name"]: s["rows"] for s in report["sides"]}
    assert len(set(rows.values())) == 1, rows
    _record(name, measured, rows["legacy"])


def _record(name: str, measured: dict, rows: int) -> None:
    print(f"\n{name} ({rows} rows) vs legacy: {json.dumps(measured)}")
    log = os.environ.get("BATCH_PREDICT_ULP_LOG")
    if log:
        with Path(log).open("a") as f:
            f.write(json.dumps({"pipeline": name, "rows": rows, "outputs": measured}) + "\n")
