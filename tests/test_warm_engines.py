"""Jobs on warm engines started on this machine give the same bits as a cold run (issue 16).

The documented ways (README, "Warm engines"): a Ray head from ``ray start --head`` with the job
saying ``[ray] address = "auto"``, and a Spark Connect server from ``python -m
spark_backend.connect_server`` with ``[spark] remote = "sc://localhost:PORT"``. Each job runs
through the CLI in a subprocess (this pytest process holds its own local engines), once cold and
once warm, and the two outputs must hold the same rows with the same values bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from benchmarks.warm import WarmRay, WarmSpark
from common.run.output import MANIFEST
from tests.support import make_job, read_output

pytestmark = [pytest.mark.spark, pytest.mark.ray, pytest.mark.slow]
ROWS = 300


def run_cli(job: Path, backend: str, out: Path, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    cli = Path(sys.executable).with_name("batch-predict")
    done = subprocess.run(
        [str(cli), "run", str(job), "--backend", backend, "--output", str(out), "--overwrite"],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def with_settings(job: Path, name: str, section: str, line: str) -> Path:
    """A copy of the job file beside it with ``line`` added to its ``[section]``."""
    text = job.read_text()
    header = f"[{section}]\n"
    text = text.replace(header, header + line + "\n") if header in text else text + f"\n{header}{line}\n"
    path = job.with_name(f"{name}.toml")
    path.write_text(text)
    return path


def same_bits(a: Path, b: Path) -> None:
    left, right = read_output(a).sort_by("id"), read_output(b).sort_by("id")
    assert left.num_rows == right.num_rows == ROWS
    assert left.schema == right.schema
    for name in left.column_names:  # floats compared as their bytes: NaN payloads and -0.0 count
        x, y = left.column(name).combine_chunks(), right.column(name).combine_chunks()
        if pa.types.is_floating(x.type):
            x, y = (
                x.view(pa.int64() if x.type.bit_width == 64 else pa.int32()),
                y.view(pa.int64() if y.type.bit_width == 64 else pa.int32()),
            )
        assert x.equals(y), name


@pytest.fixture(scope="module")
def job_path(tmp_path_factory) -> Path:
    return make_job(tmp_path_factory.mktemp("warm"), rows=ROWS, files=2)


def test_ray_auto_on_a_local_head_matches_a_cold_run(job_path, tmp_path):
    run_cli(job_path, "ray", tmp_path / "cold")
    warm_job = with_settings(job_path, "warm-ray", "ray", 'address = "auto"')
    with WarmRay() as head:
        out = run_cli(warm_job, "ray", tmp_path / "warm", head.env)
        shipped = list(head.root.glob("session_*/runtime_resources/py_modules_files/*"))
    assert out.startswith(f"ray: rows in {ROWS}, rows out {ROWS}")
    assert shipped == [], "a cluster on this machine runs the same files: nothing to ship"
    same_bits(tmp_path / "cold", tmp_path / "warm")


def test_spark_connect_server_matches_a_cold_run(job_path, tmp_path):
    run_cli(job_path, "spark", tmp_path / "cold")
    with WarmSpark(master="local[2]") as server:
        warm_job = with_settings(job_path, "warm-spark", "spark", f'remote = "{server.url}"')
        out = run_cli(warm_job, "spark", tmp_path / "warm")
        again = run_cli(warm_job, "spark", tmp_path / "again")  # the server's warm workers, reused
    assert out.startswith(f"spark: rows in {ROWS}, rows out {ROWS}") and again.startswith("spark:")
    assert json.loads((tmp_path / "warm" / MANIFEST).read_text())["engine"]["master"] == "connect"
    same_bits(tmp_path / "cold", tmp_path / "warm")
    same_bits(tmp_path / "cold", tmp_path / "again")
