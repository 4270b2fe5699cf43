"""Reliability (issue #6): no row lost or doubled, atomic output, worker failures survived, every
bad input a clear one-line error. Each test breaks one promise of README.md's "Guarantees" if it fails.

Engine runs use the session's Spark (local[2,3]: 3 attempts per task) and Ray; faults come from the
job file's ``[faults]`` section (``common.spec.faults``), with a marker folder under the test's tmp_path
so a test can tell that its fault really fired.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.cli import main
from common.errors import OutputError
from common.run.dead_letter import DEAD_LETTER_DIR, dead_letter_files
from common.run.output import MANIFEST, SUCCESS, output_files, remove_stale_staging
from common.run.reconcile import reconcile
from common.run.runner import run_job
from common.spec.job import load_job
from tests.support import ROWS, assert_failed_cleanly, read_output, reliability_job, run_cli

# ---- helpers ------------------------------------------------------------------------------------


def assert_every_row_once(folder: Path, expected_ids) -> None:
    ids = read_output(folder).column("id").to_pylist()
    assert ids == sorted(expected_ids), f"{len(ids)} rows out, {len(set(ids))} distinct"


def file_hashes(folder: Path) -> list[str]:
    return sorted(hashlib.sha256(f.read_bytes()).hexdigest() for f in output_files(folder))


def existing_output(folder: Path) -> Path:
    """An output from an earlier run, which a failed run must leave as it is: its manifest lists
    its files, so ``--overwrite`` may replace it (``common.run.output.foreign_file``)."""
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    (folder / MANIFEST).write_text(json.dumps({"rows_out": 0, "files": ["keep.txt"]}))
    return folder


# ---- 1. reconciliation --------------------------------------------------------------------------


def test_reconcile_catches_lost_doubled_and_foreign_keys():
    keys = pa.table({"id": pa.array(range(10), pa.int64())})
    reconcile(keys, keys)
    reconcile(keys, keys.slice(0, 7), keys.slice(7))  # out + dead letters == in
    cases = {
        "1 input key(s) missing, e.g. 9": keys.slice(0, 9),
        "key 3 written more than once": pa.concat_tables([keys, keys.slice(3, 1)]),
        "key(s) not in the input, e.g. 99": pa.concat_tables(
            [keys, pa.table({"id": pa.array([99], pa.int64())})]
        ),
    }
    for message, output in cases.items():
        with pytest.raises(OutputError, match=re.escape(message)) as info:
            reconcile(keys, output)
        assert f"rows in 10, rows out {output.num_rows}" in str(info.value)
    with pytest.raises(OutputError, match="key 8 written more than once"):
        reconcile(keys, keys, keys.slice(8, 1))  # a row both published and dead-lettered


@pytest.mark.parametrize("damage", ["drop", "double"])
def test_output_that_does_not_reconcile_is_never_published(damage, tmp_path, monkeypatch, capsys):
    """An engine that loses or doubles a row (simulated) fails the job; nothing is published."""
    import common.run.reference as reference

    real_run = reference.run

    def lossy_run(job, bundle, inputs, stage, settings):
        engine = real_run(job, bundle, inputs, stage, settings)
        table = pq.read_table(stage / "part-00000.parquet")
        table = table.slice(1) if damage == "drop" else pa.concat_tables([table, table.slice(5, 1)])
        pq.write_table(table, stage / "part-00000.parquet")
        return engine

    monkeypatch.setattr(reference, "run", lossy_run)
    job = reliability_job(tmp_path / "job")
    out = job.parent / "out"
    code, err = run_cli(capsys, "run", str(job), "--backend", "reference")
    rows_out = ROWS - 1 if damage == "drop" else ROWS + 1
    assert_failed_cleanly(code, err, out, f"reconciliation failed (rows in {ROWS}, rows out {rows_out})")


# ---- 2. atomic output, and re-runs ----------------------------------------------------------------


def test_rerun_gives_identical_rows_and_a_full_manifest(backend, engines, tmp_path):
    """Same job twice (the second with --overwrite): the same rows; on Spark (and the reference)
    byte-identical data files, only their names differ; Ray may order rows differently."""
    job = load_job(reliability_job(tmp_path / "job"))
    out = tmp_path / "out"
    first = run_job(replace(job, output_path=out), backend)
    assert first.summary().endswith(f"reconciled: {ROWS} in = {ROWS} out (+0 dead-lettered)")
    table, hashes = read_output(out), file_hashes(out)
    manifest = json.loads((out / MANIFEST).read_text())
    second = run_job(replace(job, output_path=out, overwrite=True), backend)
    assert second.rows_out == ROWS and (out / SUCCESS).exists()
    assert read_output(out).equals(table)
    if backend == "spark":
        assert file_hashes(out) == hashes
    assert table.column("id").to_pylist() == list(range(ROWS))
    for field in (
        "job",
        "backend",
        "rows_in",
        "rows_out",
        "dead_letter_rows",
        "bundle_hash",
        "started",
        "finished",
    ):
        assert field in manifest, field
    assert manifest["backend"] == backend and manifest["rows_out"] == ROWS and manifest["reconciled"] is True
    assert not list(tmp_path.glob(".out.*")), "staging or scratch folders left behind"


def test_killed_run_leaves_destination_untouched_and_next_run_cleans_up(tmp_path):
    """SIGKILL in the middle of writing (the process kills itself through the fault hook, so the
    moment is exact): the old output survives, the staging folder is left, the next run removes it."""
    job = reliability_job(tmp_path / "job", faults='mode = "kill_once"\nkey = 200')
    out = existing_output(job.parent / "out")
    proc = subprocess.run(
        [sys.executable, "-m", "common.cli", "run", str(job), "--backend", "reference", "--overwrite"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == -9, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["keep.txt", MANIFEST])
    stale = list(job.parent.glob(".out.staging-*"))
    assert stale and any(list(p.rglob("*.parquet")) for p in stale if p.is_dir())  # a chunk half written
    # The marker survives in marker_dir, so this run is not killed again; it must not read the stale folder.
    result = run_job(replace(load_job(job), overwrite=True), "reference")
    assert result.rows_out == ROWS
    assert_every_row_once(out, range(ROWS))
    assert not (out / "keep.txt").exists()
    assert not list(job.parent.glob(".out.*"))


def test_staging_folders_of_live_runs_and_other_hosts_are_kept(tmp_path):
    dest = tmp_path / "out"
    live = tmp_path / f".out.staging-{_host()}-{os.getpid()}-abc"
    other_host = tmp_path / ".out.staging-0000beef-1-abc"
    dead = tmp_path / f".out.staging-{_host()}-{_dead_pid()}-abc"
    for folder in (live, other_host, dead):
        folder.mkdir()
    assert remove_stale_staging(dest) == [dead]
    assert live.exists() and other_host.exists() and not dead.exists()


def _host() -> str:
    from common.run.output import _HOST

    return _HOST


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- 3. worker failures ---------------------------------------------------------------------------


def test_ray_replica_killed_mid_job_output_complete(ray_local, tmp_path):
    job = load_job(reliability_job(tmp_path / "job", faults='mode = "kill_once"\nkey = 200'))
    result = run_job(job, "ray")
    assert (job.path.parent / "markers" / "fault-fired").exists(), "the replica was never killed"
    assert result.rows_out == ROWS
    assert_every_row_once(job.output_path, range(ROWS))


@pytest.mark.parametrize("mode", ["raise_once", "kill_once"])
def test_spark_task_failing_once_is_retried(mode, spark, tmp_path):
    job = load_job(reliability_job(tmp_path / "job", faults=f'mode = "{mode}"\nkey = 200'))
    result = run_job(job, "spark")
    assert (job.path.parent / "markers" / "fault-fired").exists(), "the fault never fired"
    assert result.rows_out == ROWS
    assert_every_row_once(job.output_path, range(ROWS))


def test_batch_that_always_fails_fails_the_job_with_its_key_range(backend, engines, tmp_path, capsys):
    job = reliability_job(tmp_path / "job", faults='mode = "raise_always"\nkey = 200')
    out = existing_output(job.parent / "out")
    code, err = run_cli(capsys, "run", str(job), "--backend", backend, "--overwrite")
    assert_failed_cleanly(code, err, out, "InjectedFault: injected fault (raise_always)")
    low, high = map(int, re.search(r"rows, id (\d+)\.\.(\d+) failed", err).groups())
    assert low <= 200 <= high and high - low < 64, err
    assert (out / "keep.txt").read_text() == "precious"


def test_worker_errors_reach_the_user_as_our_one_line():
    """Spark hands back the worker's traceback as text (a chained cause first); Ray the exception."""
    from common.model.predictor import BatchFailedError
    from common.run.runner import EngineError, _unwrap

    spark_text = (
        "An error occurred while calling o81.parquet.\n: org.apache.spark.SparkException: Job aborted\n"
        "Traceback (most recent call last):\n  ...\ncommon.errors.InputError: row 3 has no pixels\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "common.model.predictor.BatchFailedError: batch of 64 rows, id 0..63 failed: InputError: row 3 has "
        "no pixels\n"
        "\tat org.apache.spark.api.python.BasePythonRunner"
    )
    error = _unwrap(RuntimeError(spark_text), "spark")
    assert type(error) is BatchFailedError and str(error).startswith("batch of 64 rows, id 0..63 failed")
    wrapped = RuntimeError("task failed")
    wrapped.cause = BatchFailedError(
        "batch of 2 rows, id 1..2 failed: ValueError: x"
    )  # Ray's RayTaskError.cause
    assert _unwrap(wrapped, "ray") is wrapped.cause
    lost = _unwrap(
        RuntimeError(
            "Job aborted due to stage failure: Task 0 in stage 5.0 failed 3 times, most recent "
            "failure: Lost task 0.2 (TID 9) (host executor driver): SparkException: worker crashed"
        ),
        "spark",
    )
    assert (
        type(lost) is EngineError
        and str(lost) == "spark failed: a task failed 3 times; last: SparkException: worker crashed"
    )


def test_error_chain_visits_each_carried_exception_once_and_ray_s_retry_advice_is_cut():
    """One walk (``common.errors.error_chain``) serves the runner's unwrap and Ray's note cutting:
    ``__cause__``, ``__context__`` and Ray's ``cause``, each once even in a cycle."""
    from common.errors import InputError, error_chain
    from ray_backend.executor import _drop_retry_notes

    ours = InputError(
        "row 3 has no pixels\nFailed to apply UDF transform after 1/1 attempts (total backoff 0s). "
        "Consider raising the retries if you believe this to be transient."
    )
    task_error = RuntimeError("task failed")
    task_error.cause = ours  # Ray's RayTaskError keeps the worker's exception here
    outer = ValueError("write failed")
    outer.__cause__ = outer.__context__ = task_error
    ours.__context__ = outer  # a cycle ends the walk, not the process
    assert list(error_chain(outer)) == [outer, task_error, ours]
    _drop_retry_notes(outer)
    assert str(ours) == "row 3 has no pixels"


# ---- 4. per-row errors --------------------------------------------------------------------------


def test_rows_that_raise_are_dead_lettered(backend, engines, tmp_path, capsys):
    bad = [5, 150, 299]  # 5 is also in the driver's preflight sample
    job = reliability_job(tmp_path / "job", on_error="dead_letter", bundle={"mode": "raise_rows", "ids": bad})
    out = job.parent / "out"
    code = main(["run", str(job), "--backend", backend])
    summary = capsys.readouterr().out
    assert code == 0
    assert f"reconciled: {ROWS} in = {ROWS - 3} out (+3 dead-lettered)" in summary
    assert_every_row_once(out, sorted(set(range(ROWS)) - set(bad)))
    dead = pq.read_table([str(f) for f in dead_letter_files(out)]).sort_by("id")
    assert dead.column_names == ["id", "cat", "error"]
    assert dead.column("id").to_pylist() == bad
    assert dead.column("error").to_pylist() == [
        f"{'InputError' if i % 2 == 0 else 'ValueError'}: cannot score id {i}" for i in bad
    ]
    assert json.loads((out / MANIFEST).read_text())["dead_letter_rows"] == 3
    assert (out / DEAD_LETTER_DIR).is_dir() and "__batch_predict_error__" not in read_output(out).column_names


@pytest.mark.parametrize(
    ("backend", "mode", "needle"),
    [
        ("spark", "wrong_rows", "returned 63 rows for a batch of 64"),
        ("ray", "wrong_columns", "returned 2 output columns but outputs declares 1"),
    ],
)
def test_bundle_contract_errors_fail_the_job_even_with_dead_letter(
    backend, mode, needle, engines, tmp_path, capsys
):
    """The model breaks its contract only from id 200 on, past the driver's preflight sample."""
    job = reliability_job(tmp_path / "job", on_error="dead_letter", bundle={"mode": mode, "from_id": 200})
    code, err = run_cli(capsys, "run", str(job), "--backend", backend)
    assert_failed_cleanly(code, err, job.parent / "out", needle, "pybundle")
