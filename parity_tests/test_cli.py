"""``batch-predict compare`` and ``batch-predict parity`` as users call them: output and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.cli import main
from common.spec.backends import bundle_backend_names
from tests.support import make_job


def write_pair(tmp_path):
    """Two outputs that differ in exactly one float by 1 ULP, one key and one label."""
    n = 50
    score = np.linspace(0, 1, n)
    a = pa.table({"id": np.arange(n), "score": score, "label": (score > 0.5).astype(np.int64)})
    score_b = score.copy()
    score_b[7] = np.nextafter(score_b[7], 2.0)
    label_b = a.column("label").to_numpy().copy()
    label_b[30] = 1 - label_b[30]
    b = pa.table({"id": np.arange(n), "score": score_b, "label": label_b}).slice(0, n - 1)  # key 49 only in a
    pq.write_table(a, tmp_path / "a.parquet")
    (tmp_path / "b").mkdir()
    pq.write_table(b.slice(0, 20), tmp_path / "b" / "part-0.parquet")
    pq.write_table(b.slice(20), tmp_path / "b" / "part-1.parquet")
    return tmp_path / "a.parquet", tmp_path / "b"


def test_compare_reports_exactly_the_three_differences(tmp_path, capsys):
    a, b = write_pair(tmp_path)
    code = main(
        ["compare", str(a), str(b), "--key", "id", "--names", "spark,ray", "--report", str(tmp_path / "rep")]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    report = json.loads((tmp_path / "rep" / "parity.json").read_text())
    problems = report["problems"]
    assert len(problems) == 3, problems
    joined = "\n".join(problems)
    assert "score" in joined and "label" in joined and ("only" in joined or "missing" in joined)
    columns = {c["name"]: c for c in report["pairs"][0]["columns"]}
    assert columns["score"]["unequal"] == 1 and columns["score"]["max_ulps"] == 1
    assert columns["label"]["unequal"] == 1
    assert report["pairs"][0]["left_only"] == 1 and report["pairs"][0]["right_only"] == 0
    assert (
        "<img" in (tmp_path / "rep" / "parity.html").read_text()
        or "<svg" in (tmp_path / "rep" / "parity.html").read_text()
    )


def test_compare_with_ulp_tolerance_leaves_key_and_label(tmp_path, capsys):
    a, b = write_pair(tmp_path)
    assert main(["compare", str(a), str(b), "--key", "id", "--ulps", "1"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out


def test_compare_identical_outputs_exit_zero(tmp_path, capsys):
    a, _ = write_pair(tmp_path)
    assert main(["compare", str(a), str(a), "--key", "id"]) == 0
    assert "bit-identical" in capsys.readouterr().out


def test_compare_bad_key_is_an_error(tmp_path, capsys):
    a, b = write_pair(tmp_path)
    assert main(["compare", str(a), str(b), "--key", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err


def test_parity_command_runs_all_three(tmp_path, engines, capsys):
    job = make_job(tmp_path / "job", rows=300, files=2)
    code = main(["parity", str(job), "--out", str(tmp_path / "parity")])
    out = capsys.readouterr().out
    assert code == 0, out
    for side in bundle_backend_names():
        assert (tmp_path / "parity" / side / "_SUCCESS").exists()
    report = json.loads((tmp_path / "parity" / "parity.json").read_text())
    assert report["ok"] and report["reference"] == "reference"
    assert {p["left"] + "/" + p["right"] for p in report["pairs"]} >= {"reference/spark", "reference/ray"}
