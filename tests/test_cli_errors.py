"""Bad input: one line naming the thing at fault, exit code 2, no output left behind.

README's "Every bad input is one clear line" catalogue. These fail before any engine starts, so
they run without Spark or Ray.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.cli import main
from common.errors import InputError
from common.run.runner import prepare
from common.spec.job import load_job
from tests.support import assert_failed_cleanly, make_job, reliability_job, run_cli


def assert_clean_error(code: int, err: str, job: Path, *needles: str) -> None:
    assert_failed_cleanly(code, err, job.parent / "out", *needles)


@pytest.fixture
def job(tmp_path) -> Path:
    return make_job(tmp_path / "job", rows=50)


def test_missing_input_path(job, capsys):
    code, err = run_cli(
        capsys, "run", str(job), "--backend", "ray", "--input", str(job.parent / "nope.parquet")
    )
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


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("[ray]\n", '[ray]\nblocks_per_replica = "two"\n'),
            '[ray]: field "blocks_per_replica" must be an integer, got "two"',
        ),
        (
            ('key = "id"\n', 'key = "id"\non_error = "skip"\n'),
            '[job]: field "on_error" is "skip"; valid: fail, dead_letter',
        ),
        (("[ray]\n", "[ray]\nnum_gpus = -1\n"), '[ray]: field "num_gpus" must be >= 0, got -1.0'),
        (
            ('key = "id"\n', 'key = "id"\n[spark]\nudf = "scalar"\n'),
            '[spark]: field "udf" is "scalar"; valid: arrow, pandas',
        ),
        (("[ray]\n", "[parity]\nulps = -2\n[ray]\n"), '[parity]: field "ulps" must be >= 0, got -2'),
        (
            ("[ray]\n", "[flink]\n[ray]\n"),
            "unknown section [flink]; valid: faults, input, job, legacy, model, output, parity",
        ),
    ],
)
def test_wrong_values_name_file_table_and_field(job, capsys, change, expected):
    """Every table of the job file is read by one strict reader: one style of message everywhere."""
    job.write_text(job.read_text().replace(*change, 1))
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, f"{job}: {expected}")


def test_bundle_values_name_file_and_field(job, capsys):
    toml = job.parent / "bundle" / "bundle.toml"
    toml.write_text(
        toml.read_text()
        .replace('device = "cpu"', 'device = "tpu"')
        .replace("batch_size = 64", "batch_size = 0")
    )
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, f'{toml}: field "device" is "tpu"; valid: auto, cpu, cuda')
    toml.write_text(toml.read_text().replace('device = "tpu"', 'device = "cpu"'))
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")
    assert_clean_error(code, err, job, f'{toml}: field "batch_size" must be a positive integer, got 0')
    toml.write_text(
        toml.read_text()
        .replace("batch_size = 0", "batch_size = 64")
        .replace('method = "predict_proba"', 'method = "proba"')
    )
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray")  # the kind's own check, at preflight
    assert_clean_error(
        code, err, job, 'field "method" is "proba"; valid for kind sklearn: predict, predict_proba'
    )


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
        [
            str(Path(sys.executable).with_name("batch-predict")),
            "run",
            str(job),
            "--backend",
            "ray",
            "--input",
            "/nonexistent",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("batch-predict: error: input /nonexistent")


def test_two_bundles_with_same_module_name_do_not_collide(tmp_path):
    """Spark reuses Python workers across jobs: each bundle must run its own handler.py."""
    from common.model.kinds import handler_for
    from common.spec.bundle import load_bundle

    for value in (1, 2):
        folder = tmp_path / f"b{value}"
        folder.mkdir()
        (folder / "handler.py").write_text(
            "from common.model import ModelHandler\n"
            "class H(ModelHandler):\n"
            "    def load_model(self):\n"
            f"        return {value}\n"
            "    def run_inference(self, batch, model):\n"
            "        return [model] * batch.num_rows\n"
        )
        (folder / "bundle.toml").write_text(
            'kind = "python"\nentrypoint = "handler:H"\nfeatures = ["x"]\n[outputs]\ny = "int64"\n'
        )
    loaded = [handler_for(load_bundle(tmp_path / f"b{v}"), "cpu").load_model() for v in (1, 2)]
    assert loaded == [1, 2]


def test_missing_entrypoint_module(tmp_path):
    from common.errors import BundleError
    from common.model.kinds import handler_for
    from common.spec.bundle import load_bundle

    (tmp_path / "bundle.toml").write_text(
        'kind = "python"\nentrypoint = "nope:H"\nfeatures = ["x"]\n[outputs]\ny = "int64"\n'
    )
    with pytest.raises(BundleError, match="nope.py is missing"):
        handler_for(load_bundle(tmp_path), "cpu")


# ---- 5. bad input catalogue (fails before any engine starts) --------------------------------------


@pytest.fixture
def two_file_job(tmp_path) -> Path:
    return reliability_job(tmp_path / "job")


def cli_error(capsys, job: Path, *extra: str) -> str:
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray", *extra)
    assert_failed_cleanly(code, err, job.parent / "out")
    return err


def test_corrupt_parquet_file(two_file_job, capsys):
    job = two_file_job
    (job.parent / "input" / "part-001.parquet").write_bytes(b"PAR1 this is not parquet")
    err = cli_error(capsys, job)
    assert "part-001.parquet" in err and "not a readable Parquet file" in err


def test_files_with_conflicting_schemas(two_file_job, capsys):
    job = two_file_job
    file = job.parent / "input" / "part-001.parquet"
    table = pq.read_table(file)
    pq.write_table(table.set_column(2, "x2", table.column("x2").cast(pa.float32())), file)
    err = cli_error(capsys, job)
    assert "part-001.parquet" in err and "schema differs" in err and '"x2" is float' in err


def test_string_column_where_a_number_is_needed(two_file_job, capsys):
    job = two_file_job
    file = job.parent / "input" / "part-000.parquet"
    for name in ("part-000.parquet", "part-001.parquet"):
        table = pq.read_table(job.parent / "input" / name)
        pq.write_table(
            table.set_column(2, "x2", table.column("x2").cast(pa.string())), job.parent / "input" / name
        )
    with pytest.raises(InputError, match='column "x2" is string'):
        prepare(load_job(job))  # the schema check alone, without the model's preflight
    err = cli_error(capsys, job)
    assert '"x2"' in err and "string" in err and str(file.parent) in err


def test_model_artifact_missing(two_file_job, capsys):
    job = two_file_job
    (job.parent / "bundle" / "model.joblib").unlink()
    err = cli_error(capsys, job)
    assert "model.joblib" in err and "not found" in err


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        ("wrong_rows", "returned 15 rows for a batch of 16"),
        ("wrong_columns", "returned 2 output columns"),
    ],
)
def test_model_returning_wrong_rows_or_columns(mode, needle, tmp_path, capsys):
    job = reliability_job(tmp_path / "job", bundle={"mode": mode})
    err = cli_error(capsys, job)
    assert needle in err and "pybundle" in err


@pytest.mark.parametrize("where", ["under_a_file", "read_only_folder"])
def test_unwritable_output_path(where, two_file_job, tmp_path, capsys):
    job = two_file_job
    if where == "under_a_file":
        (tmp_path / "a_file").write_text("")
        out, needle = tmp_path / "a_file" / "out", "is a file"
    elif os.geteuid() == 0:  # root writes through chmod 0o500; /proc refuses new folders even to root
        out, needle = Path("/proc") / f"batch-predict-{uuid.uuid4().hex[:8]}", "not writable"
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        out, needle = tmp_path / "ro" / "out", "not writable"
    code, err = run_cli(capsys, "run", str(job), "--backend", "ray", "--output", str(out))
    assert code == 2 and len(err.splitlines()) == 1 and needle in err and str(out) in err, err
    assert not out.exists()


def test_unknown_transform_field(two_file_job, capsys):
    job = two_file_job
    toml = job.parent / "bundle" / "bundle.toml"
    toml.write_text(toml.read_text().replace("value = 0.0", "value = 0.0\nfill = 1.0", 1))
    err = cli_error(capsys, job)
    assert '"fill"' in err and "bundle.toml" in err and "impute" in err


@pytest.mark.parametrize(
    ("faults", "needle"),
    [
        (
            'mode = "explode"\nkey = 1',
            'field "mode" is "explode"; valid: raise_once, raise_always, kill_once, kill_always',
        ),
        ('mode = "raise_once"\nkey = "abc"', 'does not fit key column "id"'),
    ],
)
def test_bad_faults_section(faults, needle, tmp_path, capsys):
    job = reliability_job(tmp_path / "job", faults=faults)
    err = cli_error(capsys, job)
    assert "[faults]" in err and needle in err
