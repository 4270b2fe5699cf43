"""The same job file, with only an address added, gives the same output on a real cluster as in
local mode (issue #7): a Spark standalone cluster and a two-node Ray cluster, both started on this
machine by the fixtures below and stopped after, even when a test fails.

The cluster runs go through the CLI in a subprocess, the production path: this pytest process
already holds a local SparkSession and a local Ray, which the executors would reuse, ignoring the
address. Each cluster output is compared with the local-mode output by ``compare_outputs``, with
exact tolerances. A cluster that cannot start fails the test with its log; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from common.errors import JobError
from common.parity.compare import compare_outputs
from common.run.output import MANIFEST
from common.run.runner import run_job
from common.spec.job import load_job
from common.spec.parity import ParitySettings
from common.spec.toml import parse_table
from ray_backend.settings import RaySettings
from tests.clusters import RayCluster, SparkStandalone, remove_tree, run_process, short_temp_dir, venv_bin
from tests.support import make_job

ROWS = 600
EXACT = ParitySettings(strict_types=True)  # zero tolerance on every column, types included


@pytest.fixture(scope="module")
def job_path(tmp_path_factory) -> Path:
    return make_job(tmp_path_factory.mktemp("cluster-job"), rows=ROWS, files=2)


@pytest.fixture
def spark_cluster():
    root = short_temp_dir("bp-spark-")
    with SparkStandalone(root) as cluster:
        yield cluster
    remove_tree(root)


@pytest.fixture(scope="module")
def ray_cluster():
    root = short_temp_dir("bp-ray-")
    with RayCluster(root, gpus_on_second_node=1) as cluster:
        yield cluster
    remove_tree(root)


def cluster_job(job_path: Path, name: str, lines: str) -> Path:
    """A copy of the job file, beside it so that its relative paths still resolve, plus ``lines``."""
    path = job_path.with_name(f"{name}.toml")
    path.write_text(job_path.read_text() + lines)
    return path


def run_cli(job: Path, backend: str, output: Path, env: dict[str, str]) -> tuple[int, str]:
    """``batch-predict run`` in its own process tree, from the job's folder, not the repo."""
    argv = [venv_bin("batch-predict"), "run", str(job), "--backend", backend, "--output", str(output)]
    return run_process(f"batch-predict {backend}", argv, output.with_suffix(".log"), env, cwd=job.parent)


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Ray address or auth setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("RAY_AUTH_")}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, **extra)
    return env


def assert_same_as_local(local: Path, cluster: Path) -> None:
    report = compare_outputs({"local": local, "cluster": cluster}, key="id", settings=EXACT)
    assert report.ok, report.problems()
    assert [s.rows for s in report.sides] == [ROWS, ROWS]


@pytest.mark.slow
def test_spark_standalone_cluster_matches_local_mode(job_path, spark, spark_cluster, tmp_path):
    local = tmp_path / "local"
    run_job(replace(load_job(job_path), output_path=local), "spark")
    job = cluster_job(job_path, "job-spark-cluster", f'\n[spark]\nmaster = "{spark_cluster.url}"\n')

    code, out = run_cli(job, "spark", tmp_path / "cluster", cli_env())

    assert code == 0, f"{out[-4000:]}\n{spark_cluster.logs()}"
    assert f"spark: rows in {ROWS}, rows out {ROWS}" in out
    manifest = json.loads((tmp_path / "cluster" / MANIFEST).read_text())
    assert manifest["engine"]["master"] == spark_cluster.url
    assert list((spark_cluster.root / "work").glob("app-*/*/stderr")), "no executor ran on the worker"
    assert_same_as_local(local, tmp_path / "cluster")


@pytest.mark.slow
def test_ray_two_node_cluster_matches_local_mode(job_path, ray_local, ray_cluster, tmp_path):
    local = tmp_path / "local"
    run_job(replace(load_job(job_path), output_path=local), "ray")
    job = cluster_job(
        # ship_code: this two-node cluster stands for one on other machines, which need our code
        job_path,
        "job-ray-cluster",
        f'address = "{ray_cluster.address}"\nship_code = true\n',
    )  # the [ray] section is last

    code, out = run_cli(job, "ray", tmp_path / "cluster", cli_env(**ray_cluster.env))

    assert code == 0, f"{out[-4000:]}\n{ray_cluster.logs()}"
    assert f"ray: rows in {ROWS}, rows out {ROWS}" in out
    # The second node advertises a (logical) GPU, so the GPU pipeline's shape is scheduled: the
    # replica reserves it, the host transforms run in a CPU operator on the head, and the device
    # is what the replica found (torch sees no CUDA here), not what the reservation promised.
    engine = json.loads((tmp_path / "cluster" / MANIFEST).read_text())["engine"]
    assert (engine["replica_gpus"], engine["host_stage_ops"]) == (1.0, ["string_index"]), engine
    assert json.loads((tmp_path / "cluster" / MANIFEST).read_text())["device"] == "cpu"
    # With one CPU per node, the model replica holds one node and reads and writes run on the
    # other; each node unpacked the harness packages that ray_backend.engine.start ships as py_modules.
    for node in ray_cluster.node_dirs():
        shipped = {p.name for p in (node / "runtime_resources" / "py_modules_files").glob("_ray_pkg_*/*")}
        assert {"common", "ray_backend"} <= shipped, f"{node}: {shipped}"
    assert_same_as_local(local, tmp_path / "cluster")


@pytest.mark.slow
def test_ray_cluster_refuses_a_driver_without_the_token(job_path, ray_cluster, tmp_path):
    """What a user must set: without RAY_AUTH_MODE=token and the cluster's token, the run fails
    with one line that says so, and publishes nothing."""
    job = cluster_job(job_path, "job-ray-no-token", f'address = "{ray_cluster.address}"\n')

    # RAY_gcs_server_port_wait_time_s: 2 connection attempts instead of Ray's 20 (one a second).
    env = cli_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-the-token", RAY_gcs_server_port_wait_time_s="2")
    code, out = run_cli(job, "ray", tmp_path / "refused", env)

    assert code == 2, out[-4000:]
    assert "refused this driver's auth token: set RAY_AUTH_MODE=token" in out
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize(
    "cluster, settings, expected",
    [
        ({"CPU": 2.0}, {}, (0.5, 0.0)),  # two replicas leave one CPU for reads
        ({"CPU": 16.0, "GPU": 1.0}, {}, (1.0, 0.5)),  # one GPU, two replicas: half each, both start
        ({"CPU": 16.0, "GPU": 3.0}, {"concurrency": 4}, (1.0, 0.5)),  # 0.75 each would leave one waiting
        ({"CPU": 16.0, "GPU": 4.0}, {"concurrency": 3}, (1.0, 1.0)),
        ({"CPU": 16.0, "GPU": 1.0}, {"num_gpus": 0.25, "num_cpus": 2.0}, (2.0, 0.25)),
        ({"CPU": 16.0, "GPU": 1.0}, {"num_gpus": 0}, (1.0, 0.0)),
    ],
)
def test_ray_replica_resources(cluster, settings, expected):
    from ray_backend.executor import replica_resources

    parsed = parse_table(RaySettings, settings, "job.toml: [ray]")
    assert replica_resources(parsed, cluster) == expected


@pytest.fixture(scope="module")
def ray_cpu_cluster():
    """Two nodes of 1 CPU each and no GPU: a cluster sized per node, as cloud clusters are."""
    root = short_temp_dir("bp-ray1-")
    with RayCluster(root, cpus_per_node=1) as cluster:
        yield cluster
    remove_tree(root)


@pytest.mark.slow
def test_ray_cluster_of_one_cpu_nodes_runs_concurrency_one(job_path, ray_local, ray_cpu_cluster, tmp_path):
    """Issue 23 item 7: with concurrency = 1 each task used to reserve the cluster's 2 CPUs, which
    no node has, and the job hung forever; now a task asks for one node's CPU at most and Ray
    Data's task pool keeps one running at a time. A plan no node can hold fails at once."""
    local = tmp_path / "local"
    run_job(replace(load_job(job_path), output_path=local), "ray")
    ray = f'address = "{ray_cpu_cluster.address}"\nship_code = true\n'  # the job has concurrency = 1
    job = cluster_job(job_path, "job-ray-1cpu", ray)
    code, out = run_cli(job, "ray", tmp_path / "cluster", cli_env(**ray_cpu_cluster.env))
    assert code == 0, f"{out[-4000:]}\n{ray_cpu_cluster.logs()}"
    engine = json.loads((tmp_path / "cluster" / MANIFEST).read_text())["engine"]
    assert (engine["replicas"], engine["replica_cpus"]) == (1, 1.0), engine
    assert_same_as_local(local, tmp_path / "cluster")

    job = cluster_job(job_path, "job-ray-2cpu-task", ray + "num_cpus = 2\n")
    code, out = run_cli(job, "ray", tmp_path / "refused", cli_env(**ray_cpu_cluster.env))
    assert code == 2, out[-4000:]
    refusal = "task asks for {'CPU': 2.0}, but the largest of 2 node(s) has {'CPU': 1.0}"
    assert refusal in out
    assert not (tmp_path / "refused").exists()


def test_ray_unschedulable_plan_fails_within_seconds(ray_local, tmp_path):
    """``[ray] num_cpus = 64`` on the 2-CPU local Ray used to warn that the job "may stall" and
    hang until killed; now it fails on the driver before a task starts, in one line."""
    import time

    job = replace(load_job(make_job(tmp_path, rows=200)), output_path=tmp_path / "out")
    for settings, words in (
        ({"num_cpus": 64.0}, "task asks for {'CPU': 64.0}, but the largest of 1 node(s) has {'CPU': 2.0}"),
        ({"num_cpus": 64.0, "cpu_stage": True}, "model replicas asks for {'CPU': 64.0}"),
        ({"num_cpus": 1.5, "cpu_stage": True}, "leave no node with {'CPU': 1.0} for the read tasks"),
    ):
        started = time.perf_counter()
        with pytest.raises(JobError) as caught:
            run_job(job.with_settings("ray", **settings), "ray", check_model=False)
        assert time.perf_counter() - started < 10.0
        assert words in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "nodes, demand, count, fits",
    [
        ([{"CPU": 1.0}, {"CPU": 1.0}], {"CPU": 1.0}, 2, True),
        ([{"CPU": 1.0}, {"CPU": 1.0}], {"CPU": 2.0}, 1, False),  # the concurrency = 1 hang
        ([{"CPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}], {"CPU": 0.5, "GPU": 0.5}, 2, True),
        ([{"CPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}], {"CPU": 0.5, "GPU": 1.0}, 2, False),
    ],
)
def test_ray_plan_fits_nodes(nodes, demand, count, fits):
    from ray_backend.sizing import check_plan_fits

    if fits:
        check_plan_fits(nodes, "replicas", demand, count)
    else:
        with pytest.raises(JobError, match="largest node has|largest of 2 node"):
            check_plan_fits(nodes, "replicas", demand, count)


def test_ray_task_share_never_exceeds_the_largest_node():
    from ray_backend.executor import task_cpu_share

    one = parse_table(RaySettings, {"concurrency": 1}, "job.toml: [ray]")
    assert task_cpu_share(one, {"CPU": 2.0}, largest={"CPU": 1.0}) == 1.0  # two 1-CPU nodes
    assert task_cpu_share(one, {"CPU": 2.0}, largest={"CPU": 2.0}) == 2.0  # one 2-CPU node: 2 threads


def test_ray_runtime_env_setting():
    """``[ray] runtime_env`` reaches ray_backend.engine.start as a table; its py_modules must be a list."""
    settings = parse_table(RaySettings, {"runtime_env": {"env_vars": {"A": "1"}}}, "job.toml: [ray]")
    assert settings.runtime_env == {"env_vars": {"A": "1"}}
    with pytest.raises(JobError, match='runtime_env": py_modules must be a list'):
        parse_table(RaySettings, {"runtime_env": {"py_modules": "common"}}, "job.toml: [ray]")
