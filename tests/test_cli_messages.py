"""What a new user reads (issue 24, item 6): every backend the registry knows, and ``auto``, in
help and errors; table cells that wrap instead of being cut; no empty folders left behind; a
fleet table that says which rows paid for the engine's start. No engine runs here."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.cli import build_parser, main
from common.errors import JobError
from common.parity.compare import compare_outputs
from common.parity.report import format_summary
from common.parity.report_data import WITHIN_TOLERANCE
from common.rollout.fleet import FleetResult, FleetRow
from common.run.backends import ENV_VAR, get_backend
from common.spec.backends import AUTO, backend_names


def test_every_backend_and_auto_in_help_and_errors(capsys, monkeypatch):
    valid = [*backend_names(), AUTO]
    assert "auto" in valid and set(backend_names()) >= {"spark", "ray", "reference", "legacy"}
    top = build_parser().format_help()
    assert f"backends: {', '.join(valid)}" in top
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert f"{{{','.join(valid)}}}" in capsys.readouterr().out
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(JobError) as caught:
        get_backend(None)
    assert str(caught.value).endswith(f"valid: {', '.join(valid)}")
    with pytest.raises(JobError, match=f"valid: {', '.join(valid)}$"):
        get_backend("flink")


def write(path, table):
    path.mkdir(parents=True)
    pq.write_table(table, path / "part-0.parquet")
    return path


def test_long_type_cells_wrap_and_no_empty_work_folder(tmp_path):
    ids = pa.array(np.arange(3, dtype=np.int64))
    nested = pa.array(
        [[{"a": 1.0, "b": "x"}]] * 3, pa.list_(pa.struct([("a", pa.float64()), ("b", pa.string())]))
    )
    a = write(tmp_path / "a", pa.table({"id": ids, "a_rather_long_column_name_indeed": nested}))
    b = write(tmp_path / "b", pa.table({"id": ids, "a_rather_long_column_name_indeed": pa.array([1.0] * 3)}))
    work = tmp_path / "parity" / "_work"
    report = compare_outputs({"a": a, "b": b}, "id", work_dir=work)
    lines = format_summary(report).splitlines()
    assert "…" not in "".join(lines) and max(map(len, lines)) <= 100
    row = lines.index(next(line for line in lines if line.startswith("column"))) + 1
    column = "".join(line[:16].strip() for line in lines[row : row + 3])
    type_cell = " ".join(line[17:34].strip() for line in lines[row : row + 3])
    assert column == "a_rather_long_column_name_indeed"
    assert type_cell == "list<struct<a: double, b: string>> / double"
    assert not work.exists() and os.listdir(tmp_path / "parity") == []


def test_fleet_table_marks_the_rows_that_paid_for_engine_start(tmp_path):
    def row(job, spark_start, ray_start):
        return FleetRow(
            job,
            f"/jobs/{job}.toml",
            WITHIN_TOLERANCE,
            rows=10,
            engines={
                "spark": {"seconds": 9.0, "startup_seconds": spark_start},
                "ray": {"seconds": 3.0, "startup_seconds": ray_start},
            },
            ray_speedup=3.0,
        )

    rows = [row("xgb", 6.0, 2.5), row("a_job_name_much_longer_than_forty_eight_characters_x", 0.0, 0.0)]
    lines = FleetResult(rows, {"html": tmp_path / "index.html"}).summary_lines()
    assert "9.00*" in lines[1] and "3.00*" in lines[1]
    assert "*" not in "".join(lines[2:4])
    assert lines[2].startswith("a_job_name_much_longer_than_forty_eight_characte")
    assert lines[3].startswith("rs_x")  # wrapped, not cut
    assert any(line.startswith("* includes the engine's start") for line in lines)
