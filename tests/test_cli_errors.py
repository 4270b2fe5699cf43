"""Bad input: one line naming the thing at fault, exit code 2, no output left behind.

These fail before any engine starts, so they run without Spark or Ray.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.cli import main
from tests.jobs import make_job


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_clean_error(code: int, err: str, job: Path, *needles: str) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert not (job.parent / "out").exists()
    assert not any(p.name.startswith(".out.staging") for p in job.parent.iterdir())


@pytest.fixture
def job(tmp_path) -> Path:
    return make_job(tmp_path / "job", rows=50)


def test_missing_input_path(job, capsys):
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray", "--input", str(job.parent / "nope.parquet"))
    assert_clean_error(code, err, job, "nope.parquet", "no such file")


def test_missing_input_column(job, capsys):
    table = pq.read_table(job.parent / "input.parquet").drop_columns(["x2"])
    pq.write_table(table, job.parent / "input.parquet")
    code, err = run_cli(capsys, "run", str(job), "--backend", "spark")
    assert_clean_error(code, err, job, '"x2"')


def test_missing_bundle(job, capsys):
    shutil.rmtree(job.parent / "bundle")
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, "bundle", "no such folder")


def test_corrupt_bundle_artifact(job, capsys):
    (job.parent / "bundle" / "model.joblib").write_bytes(b"not a joblib file")
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, "model.joblib")


def test_unknown_transform_op(job, capsys):
    toml = job.parent / "bundle" / "bundle.toml"
    toml.write_text(toml.read_text().replace('op = "impute"', 'op = "imputee"'))
    code, err = run_cli(capsys, "run", str(job), "--backend", "spark")
    assert_clean_error(code, err, job, "imputee", "impute")


def test_unknown_backend_lists_valid_ones(job, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:  # the flag is checked by argparse
        main(["run", str(job), "--backend", "flink"])
    assert exit_info.value.code == 2 and "'flink'" in capsys.readouterr().err
    monkeypatch.setenv("BATCH_PREDICT_BACKEND", "flink")  # the environment reaches the registry
    code, err = run_cli(capsys, "run", str(job))
    assert_clean_error(code, err, job, '"flink"', "ray", "spark")


def test_malformed_job_toml(job, capsys):
    job.write_text("[job\nkey = 'id'\n")
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, "job.toml", "malformed TOML")


def test_unknown_job_field(job, capsys):
    job.write_text(job.read_text().replace("[ray]\n", "[ray]\nconcurency = 2\n"))
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, "concurency", "concurrency")


def test_existing_output_not_overwritten(job, capsys):
    (job.parent / "out").mkdir()
    (job.parent / "out" / "keep.txt").write_text("precious")
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (job.parent / "out" / "keep.txt").read_text() == "precious"


def test_duplicate_and_null_keys_rejected(job, capsys):
    table = pq.read_table(job.parent / "input.parquet")
    ids = table.column("id").to_pylist()
    ids[3] = ids[2]
    pq.write_table(table.set_column(0, "id", pa.array(ids)), job.parent / "input.parquet")
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, "duplicate key 2")
    ids[3] = None
    pq.write_table(table.set_column(0, "id", pa.array(ids)), job.parent / "input.parquet")
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, '"id"', "null")


def test_console_script_exit_code(job):
    """The installed entry point, as a production scheduler calls it."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("batch-predict")), "run", str(job), "--backend", "ray", "--input", "/nonexistent"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("batch-predict: error: input /nonexistent")


def test_two_bundles_with_same_module_name_do_not_collide(tmp_path):
    """Spark reuses Python workers across jobs: each bundle must run its own handler.py."""
    from common.bundle import load_bundle
    from common.models import handler_for

    for value in (1, 2):
        folder = tmp_path / f"b{value}"
        folder.mkdir()
        (folder / "handler.py").write_text(
            "from common.models import ModelHandler\n"
            "class H(ModelHandler):\n"
            "    def load_model(self):\n"
            f"        return {value}\n"
            "    def run_inference(self, batch, model):\n"
            "        return [model] * batch.num_rows\n"
        )
        (folder / "bundle.toml").write_text('kind = "python"\nentrypoint = "handler:H"\nfeatures = ["x"]\n[outputs]\ny = "int64"\n')
    loaded = [handler_for(load_bundle(tmp_path / f"b{v}"), "cpu").load_model() for v in (1, 2)]
    assert loaded == [1, 2]


def test_missing_entrypoint_module(tmp_path):
    from common.bundle import load_bundle
    from common.errors import BundleError
    from common.models import handler_for

    (tmp_path / "bundle.toml").write_text('kind = "python"\nentrypoint = "nope:H"\nfeatures = ["x"]\n[outputs]\ny = "int64"\n')
    with pytest.raises(BundleError, match="nope.py is missing"):
        handler_for(load_bundle(tmp_path), "cpu")
