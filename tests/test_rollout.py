"""Issue 15 on real Spark and Ray: fleet parity, certificates, ``--backend auto``, shadow runs,
resume after the driver is killed, output paths that would destroy the input, and progress.

Each test breaks if its feature does (README, "Rolling out a migration"). A job is "made to
differ" the way real migrations do: its model returns NaN for some rows and ``[spark] udf =
"pandas"`` turns NaN into null on Spark, so Spark leaves the reference and Ray does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from common.cli import main
from tests.support import make_job

ROOT = Path(__file__).resolve().parents[1]

HANDLER = '''\
import os
import time
from pathlib import Path

import numpy as np

from common.model.handler import ModelHandler


class Scores(ModelHandler):
    """x2 as the score; with [options] nan, NaN where x2 < 0; with [options] gate, a batch that
    holds gate_key waits (at most 30 s) until the gate file exists; sleep slows every batch."""

    def load_model(self):
        return None

    def run_inference(self, batch, model):
        opts = self.bundle.options
        ids = batch.numpy(["id"])[:, 0]
        x = batch.numpy(["x2"])[:, 0].copy()
        if opts.get("nan"):
            x[x < 0] = np.nan
        time.sleep(opts.get("sleep", 0))
        if opts.get("gate") and (ids == opts["gate_key"]).any():
            deadline = time.time() + 30
            while not Path(opts["gate"]).exists() and time.time() < deadline:
                time.sleep(0.05)
        return x
'''


def python_job(root: Path, rows: int = 200, files: int = 1, spark: str = "", **options) -> Path:
    """``make_job`` with a python bundle (module name unique per bundle: workers cache modules)."""
    job = make_job(root, rows=rows, files=files)
    folder = root / "pybundle"
    folder.mkdir()
    module = f"scores_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(HANDLER)
    opts = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
    (folder / "bundle.toml").write_text(
        f'kind = "python"\nentrypoint = "{module}:Scores"\nfeatures = ["x2"]\nbatch_size = 50\n'
        f'device = "cpu"\n\n[outputs]\nscore = "float64"\n\n[options]\n{opts}\n'
    )
    text = job.read_text().replace('bundle = "bundle"', 'bundle = "pybundle"')
    job.write_text(text + (f"\n[spark]\n{spark}\n" if spark else ""))
    return job


def cli(capsys, *args: str) -> tuple[int, list[str], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def tree_hash(*folders: Path) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(file).encode() + file.read_bytes())
    return digest.hexdigest()


def output_ids(folder: Path) -> list[int]:
    from common.run.inputs import data_files

    return sorted(pq.read_table([str(f) for f in data_files(folder)]).column("id").to_pylist())


# ---- fleet parity, certificates, auto ------------------------------------------------------------


def test_fleet_parity_certificates_and_auto(engines, tmp_path, capsys):
    good = make_job(tmp_path / "good", rows=200)
    other = python_job(tmp_path / "other")
    drift = python_job(tmp_path / "drift", nan=True, spark='udf = "pandas"')
    broken = make_job(tmp_path / "broken", rows=10)
    (tmp_path / "broken" / "input.parquet").unlink()
    report = tmp_path / "fleet"
    code, out, _ = cli(
        capsys, "parity", str(good), str(broken), str(other), str(drift), "--report", str(report)
    )
    assert code == 2, out  # an error on one row, and the other jobs still ran
    fleet = {row["job"]: row for row in json.loads((report / "fleet.json").read_text())["jobs"]}
    assert {k: v["verdict"] for k, v in fleet.items()} == {
        "good": "within tolerance",
        "broken": "error",
        "other": "within tolerance",
        "drift": "DIFFERS",
    }
    assert "input.parquet: no such file" in fleet["broken"]["error"]
    negative = int((pq.read_table(tmp_path / "drift" / "input.parquet").column("x2").to_numpy() < 0).sum())
    differing = {
        (frozenset(d["pair"].split(" vs ")), d["column"]): d["rows"]
        for d in fleet["drift"]["differing_columns"]
    }
    assert differing == {
        (frozenset({"reference", "spark"}), "score"): negative,
        (frozenset({"ray", "spark"}), "score"): negative,
    }
    assert fleet["good"]["rows"] == 200 and set(fleet["good"]["engines"]) == {"reference", "spark", "ray"}
    assert fleet["good"]["ray_speedup"] == pytest.approx(
        fleet["good"]["engines"]["spark"]["seconds"] / fleet["good"]["engines"]["ray"]["seconds"], rel=0.01
    )
    page = (report / "index.html").read_text()
    for name in ("good", "other", "drift"):
        assert f"href='{name}/parity.html'" in page and (report / name / "parity.json").is_file()
    assert any(line.startswith("fleet report: ") and "index.html" in line for line in out)

    # certificates: written beside each job by the parity run, pass or fail
    assert json.loads((tmp_path / "good" / "job.toml.parity.json").read_text())["verdict"] == "pass"
    assert json.loads((tmp_path / "drift" / "job.toml.parity.json").read_text())["verdict"] == "fail"
    code, out, _ = cli(capsys, "certificate", str(good))
    assert code == 0 and ": certified: parity passed for bundle" in out[0]
    code, out, _ = cli(capsys, "certificate", str(drift))
    assert code == 1 and "not certified" in out[0] and "failed: reference vs spark: column score" in out[0]

    # auto: ray with a passing certificate, spark otherwise, and the summary says why
    code, out, _ = cli(capsys, "run", str(good), "--backend", "auto")
    assert code == 0 and out[0].startswith("ray: ") and "auto -> ray: parity passed for bundle" in out[0]
    os.environ["BATCH_PREDICT_BACKEND"] = "auto"
    try:
        code, out, _ = cli(capsys, "run", str(drift))
    finally:
        del os.environ["BATCH_PREDICT_BACKEND"]
    assert (
        code == 0
        and out[0].startswith("spark: ")
        and "auto -> spark: no passing parity certificate" in out[0]
    )

    # a changed bundle file or a changed result setting invalidates the certificate
    old = json.loads((tmp_path / "good" / "job.toml.parity.json").read_text())["bundle_hash"][:6]
    with open(tmp_path / "good" / "bundle" / "bundle.toml", "a") as fh:
        fh.write("# retrained\n")
    code, out, _ = cli(capsys, "certificate", str(good))
    assert code == 1 and f"the certificate is for bundle {old}" in out[0]
    other.write_text(other.read_text() + '\n[spark]\nudf = "pandas"\n')
    code, out, _ = cli(capsys, "certificate", str(other))
    assert code == 1 and out[0].endswith("settings changed since certification: spark.udf")


# ---- shadow runs ------------------------------------------------------------------------------------


def test_shadow_that_differs_never_fails_the_primary(engines, tmp_path, capsys):
    job = python_job(tmp_path / "job", nan=True, spark='udf = "pandas"')
    out_dir = tmp_path / "job" / "out"
    code, out, _ = cli(capsys, "run", str(job), "--backend", "spark", "--shadow", "ray")
    assert code == 0 and len(out) == 2, out
    assert out[0].startswith("spark: ") and out[1].startswith(
        "shadow ray: DIFFERS: spark vs ray: column score"
    )
    manifest = json.loads((out_dir / "_manifest.json").read_text())
    assert manifest["backend"] == "spark" and output_ids(out_dir) == list(range(200))
    shadow = tmp_path / "job" / "out.shadow-ray"
    assert json.loads((shadow / "_manifest.json").read_text())["backend"] == "ray"
    assert (tmp_path / "job" / "out.shadow-ray.report" / "parity.html").is_file()
    code, out, _ = cli(
        capsys, "run", str(job), "--backend", "spark", "--shadow", "ray", "--shadow-strict", "--overwrite"
    )
    assert code == 1 and out[1].startswith("shadow ray: DIFFERS")
    assert json.loads((out_dir / "_manifest.json").read_text())["backend"] == "spark"  # still published


# ---- resume --------------------------------------------------------------------------------------------


def test_driver_killed_mid_run_resumes_the_remaining_chunks(spark, tmp_path, capsys):
    """Four input files, four chunks; the batch holding id 250 (third chunk) waits on a gate, so
    the SIGKILL lands after exactly two chunks were committed."""
    gate = tmp_path / "gate"
    job = python_job(tmp_path / "job", rows=400, files=4, gate=str(gate), gate_key=250)
    job.write_text(job.read_text().replace('key = "id"', 'key = "id"\nchunk_rows = 100'))
    out_dir = tmp_path / "job" / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "common.cli", "run", str(job), "--backend", "spark", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stage = _wait_for_committed_chunks(tmp_path / "job", 2, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert not out_dir.exists()
    staged = json.loads((stage / "_chunks.json").read_text())
    assert sorted(staged["done"]) == ["0", "1"]
    committed = {name: (stage / name).stat().st_ino for names in staged["done"].values() for name in names}

    # a resume whose input or bundle changed refuses, one line, and keeps the staged run
    part = tmp_path / "job" / "input" / "part-003.parquet"
    stat = part.stat()
    part.write_bytes(part.read_bytes())
    code, out, err = cli(capsys, "run", str(job), "--backend", "spark", "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "the input changed (" in err
    assert "part-003.parquet was modified" in err and stage.exists()
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (tmp_path / "job" / "pybundle" / "notes.txt").write_text("retrained")
    code, out, err = cli(capsys, "run", str(job), "--backend", "spark", "--resume")
    assert code == 2 and "the bundle changed (" in err and stage.exists()
    (tmp_path / "job" / "pybundle" / "notes.txt").unlink()

    gate.write_text("open")
    code, out, err = cli(capsys, "run", str(job), "--backend", "spark", "--resume", "--quiet")
    assert code == 0, err
    assert out[0].endswith("resumed: 2 of 4 chunks were already done"), out
    manifest = json.loads((out_dir / "_manifest.json").read_text())
    assert manifest["chunks"] == {"total": 4, "already_done": 2, "run": 2}
    for name, inode in committed.items():  # the committed chunks were kept, not redone
        assert (out_dir / name).stat().st_ino == inode
    assert output_ids(out_dir) == list(range(400))
    assert not list((tmp_path / "job").glob(".out.*"))


def _wait_for_committed_chunks(folder: Path, count: int, proc: subprocess.Popen) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline:
        for manifest in folder.glob(".out.staging-*/_chunks.json"):
            try:
                if len(json.loads(manifest.read_text())["done"]) >= count:
                    return manifest.parent
            except (OSError, ValueError):
                pass
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.1)
    raise AssertionError("the run never committed its chunks")


# ---- output-path safety ------------------------------------------------------------------------------


def test_output_overlapping_input_or_bundle_is_refused_untouched(tmp_path, capsys):
    job = make_job(tmp_path / "job", rows=20, files=2)
    root = tmp_path / "job"
    data, bundle = root / "input", root / "bundle"
    before = tree_hash(data, bundle)
    cases = [
        (
            "is the input",
            ["--input", str(data / "part-000.parquet"), "--output", str(data / "part-000.parquet")],
        ),
        ("contains the input", ["--input", str(data / "part-000.parquet"), "--output", str(data)]),
        ("contains the input", ["--output", str(root)]),
        ("lies inside the input folder", ["--output", str(data / "out")]),
        ("contains the model bundle", ["--output", str(bundle)]),
        ("lies inside the model bundle", ["--output", str(bundle / "out")]),
    ]
    for needle, args in cases:
        code, out, err = cli(capsys, "run", str(job), "--backend", "spark", "--overwrite", *args)
        assert code == 2 and out == [] and len(err.strip().splitlines()) == 1, (needle, err)
        assert needle in err, err
        assert tree_hash(data, bundle) == before, f"{needle}: input or bundle touched"
        assert not [p for p in root.rglob(".*staging*")], needle


# ---- progress -----------------------------------------------------------------------------------------


def test_progress_goes_to_stderr_and_quiet_turns_it_off(engines, tmp_path, capsys, monkeypatch):
    """A single 300-row file in two row-group chunks (chunk_rows): plain progress lines on stderr,
    stdout holds the summary alone; every row out once through Spark's row-index selection."""
    import common.run.progress as progress

    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.2)
    job = python_job(tmp_path / "job", rows=300, sleep=0.1)
    table = pq.read_table(tmp_path / "job" / "input.parquet")
    pq.write_table(table, tmp_path / "job" / "input.parquet", row_group_size=50)
    job.write_text(job.read_text().replace('key = "id"', 'key = "id"\nchunk_rows = 150'))
    code, out, err = cli(capsys, "run", str(job), "--backend", "spark")
    assert code == 0 and len(out) == 1 and out[0].startswith("spark: rows in 300, rows out 300")
    lines = [line for line in err.splitlines() if line.startswith("progress: ")]
    assert lines and all(" of 300 rows (" in line and "rows/s, ETA" in line for line in lines), err
    assert output_ids(tmp_path / "job" / "out") == list(range(300))
    assert json.loads((tmp_path / "job" / "out" / "_manifest.json").read_text())["chunks"]["total"] == 2
    code, out, err = cli(capsys, "run", str(job), "--backend", "ray", "--overwrite", "--quiet")
    assert code == 0 and len(out) == 1 and out[0].startswith("ray: rows in 300, rows out 300")
    assert "progress: " not in err
    assert output_ids(tmp_path / "job" / "out") == list(range(300))  # Ray reads the row groups too
