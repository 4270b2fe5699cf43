"""Hostile cases that need an engine: what only shows once rows flow, or once the engine is up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile.support import csv_input, error_lines, run, snapshot
from tests.support import ROWS, make_job, read_output, reliability_job


def _assert_refused(code: int, err: str, root: Path, before: dict, *needles: str) -> None:
    assert code == 2, err
    assert len(error_lines(err)) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    out = root / "out"
    assert not out.exists() and not list(root.glob(".out.*")), "published or staging left"
    assert snapshot(root) == before, "a file outside the output changed"


def test_every_row_dead_lettered_fails_the_job(tmp_path, capsys, any_backend):
    """D7: the preflight passes (faults never apply there), then every row raises in the engine:
    more than DEAD_LETTER_MAX_SHARE dead-lettered is the model's fault, not the rows'."""
    keys = ", ".join(str(i) for i in range(ROWS))
    job = reliability_job(tmp_path, on_error="dead_letter", faults=f'mode = "raise_always"\nkey = [{keys}]')
    before = snapshot(tmp_path)
    code, err = run("run", str(job), "--backend", any_backend, capsys=capsys)
    _assert_refused(code, err, tmp_path, before, f"{ROWS} of {ROWS} rows", "does not fit", "InjectedFault")


@pytest.mark.ray
def test_ray_num_gpus_without_gpus_is_refused_at_once(tmp_path, capsys, ray_local):
    """D9: Ray would wait forever for a GPU the cluster does not have."""
    if ray_local.cluster_resources().get("GPU", 0) >= 1:
        pytest.skip("this machine has a GPU")
    job = make_job(tmp_path, rows=50, extra="num_gpus = 1")
    before = snapshot(tmp_path)
    code, err = run("run", str(job), "--backend", "ray", capsys=capsys)
    _assert_refused(code, err, tmp_path, before, "[ray] num_gpus = 1", "0 GPUs", "CPU")


@pytest.mark.spark
def test_spark_setting_it_cannot_start_with_is_named(tmp_path):
    """D14: the JVM's reason, not py4j's "An error occurred while calling None.org...JavaSparkContext"."""
    job = make_job(tmp_path, rows=50)
    job.write_text(job.read_text() + '\n[spark]\nmaster = "local[2]"\nconf = { "spark.task.cpus" = "4" }\n')
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("batch-predict")), "run", str(job), "--backend", "spark"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    _assert_refused(
        proc.returncode, proc.stderr.strip(), tmp_path, before, "[spark] master and conf", "cpus per task = 4"
    )


def test_csv_empty_cells_are_null_on_every_backend(tmp_path, capsys, any_backend):
    """D5: Spark reads an empty CSV cell, quoted or not, as null; so does every backend."""
    job = make_job(tmp_path, rows=10)
    rows = [f"{i},1.0,2.0,{['a', '', chr(34) * 2, 'b'][i % 4]}" for i in range(40)]
    csv_input(job, "id,x1,x2,cat\n" + "\n".join(rows) + "\n")
    code, err = run("run", str(job), "--backend", any_backend, capsys=capsys)
    assert code == 0, err
    out = read_output(tmp_path / "out")
    assert out.num_rows == 40
    cats = out.column("cat").to_pylist()
    assert cats == [["a", None, None, "b"][i % 4] for i in range(40)]
    scores = out.column("score").to_pylist()
    assert scores[1] == scores[2]  # the same null reached the model
