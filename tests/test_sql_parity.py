"""Parity attribution with sql transforms: Spark defines SQL, so when Ray and the reference (which
share the compiler) agree and Spark does not, the report says the compiled side differs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from common.parity.compare import compare_outputs
from common.spec.parity import ParitySettings


def _outputs(tmp_path, spark_scores):
    sides = {}
    for name, scores in {"reference": [0.1, 0.2, 0.3], "ray": [0.1, 0.2, 0.3], "spark": spark_scores}.items():
        pq.write_table(pa.table({"id": [1, 2, 3], "score": scores}), tmp_path / f"{name}.parquet")
        sides[name] = tmp_path / f"{name}.parquet"
    return compare_outputs(sides, ["id"], ParitySettings(), reference="reference", work_dir=tmp_path / "work")


def test_spark_alone_departing_on_a_job_with_sql_blames_the_compiled_side(tmp_path):
    report = _outputs(tmp_path, [0.1, 0.25, 0.3])
    assert report.reference_findings() == [
        "spark differs from reference on score in 1 rows; ray agrees with reference"
    ]
    report.compiled_sql = True
    assert report.reference_findings() == [
        "ray and reference (compiled SQL) differ from spark on score in 1 rows"
    ]
    assert report.to_dict()["compiled_sql"] is True


def test_agreement_reports_nothing(tmp_path):
    report = _outputs(tmp_path, [0.1, 0.2, 0.3])
    report.compiled_sql = True
    assert report.reference_findings() == []
