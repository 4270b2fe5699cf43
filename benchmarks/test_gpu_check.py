"""``benchmarks.gpu_check`` on a machine without a GPU: everything but the GPU itself.

The end-to-end test runs the real command with ``--allow-cpu`` on tiny inputs, in a process tree
that cannot import pyspark (as on the GPU machine). It uses the benchmark's workload cache: when
an example's code changed since the last build, rebuilding text_classification and generation
adds about a minute on 2 CPUs. Then it takes about 50 s on 2 idle CPUs (four jobs, each in a
fresh process with its own Ray).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import gpu_check
from benchmarks.workloads import REPO

# The hand-written models only: the transformers workloads run the same code path (Ray, CPU
# operator, parity) and would add their training to every `make test`; rehearse them with
# `python -m benchmarks.gpu_check --allow-cpu --workloads text_transformers,generation_transformers`.
ROWS = {"text_classification": 256, "generation": 64}
# On the GPU machine there is no pyspark: every process of the check (the check, the jobs, Ray's
# workers) starts with this sitecustomize, which makes importing pyspark fail.
NO_PYSPARK = """
import sys


class NoPyspark:
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the GPU machine has no pyspark)")
        return None


sys.meta_path.insert(0, NoPyspark())
"""


def env_without_pyspark(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "no_pyspark"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_PYSPARK)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), str(REPO), os.environ.get("PYTHONPATH")])),
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("RAY_ADDRESS", None)
    probe = subprocess.run([sys.executable, "-c", "import pyspark"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr, "the pyspark blocker is not loaded"
    return env


@pytest.mark.ray
@pytest.mark.slow
def test_check_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "results"
    rows = ",".join(f"{name}={count}" for name, count in ROWS.items())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_check",
            "--allow-cpu",
            "--workloads",
            ",".join(ROWS),
            "--rows",
            rows,
            "--out",
            str(out),
            "--timeout",
            "300",
        ],
        cwd=REPO,
        env=env_without_pyspark(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["gpu_run_device"] == "cpu" and data["meta"]["no_cuda_reason"]
    assert data["meta"]["machine"]["device"] and data["meta"]["versions"]["ray"]
    assert [r["workload"] for r in data["workloads"]] == list(ROWS)
    for record in data["workloads"]:
        name = record["workload"]
        assert record["rows"] == ROWS[name] and record["problems"] == [], record["problems"]
        for side in ("gpu_run", "cpu_run"):
            run = record[side]
            assert run["returncode"] == 0 and run["error"] is None
            assert run["manifest"]["device"] == run["device"] == "cpu"  # no CUDA here: both on the CPU
            assert run["manifest"]["rows_out"] == ROWS[name] and run["manifest"]["reconciled"]
            assert run["wall_seconds"] > run["engine"]["job_seconds"] > run["engine"]["startup_seconds"] > 0
            assert run["rows_per_second"] > 0 and run["engine"]["rows_per_second_after_startup"] > 0
            assert (out / run["log"]).is_file()
        assert record["cpu_run"]["cuda_visible_devices"] == ""
        assert record["gpu_over_cpu"] > 0 and record["gpu_over_cpu_after_startup"] > 0
        util = record["gpu_utilization"]
        if util["samples"] == 0:  # no nvidia-smi here: said so, and no numbers made up
            assert util["reason"] and util["utilization_mean"] is None and util["memory_peak_mib"] is None
        parity = record["parity"]
        assert parity["ok"] and parity["verdict"] == "ok" and parity["matched"] == ROWS[name]
        assert parity["cpu_only"] == parity["gpu_only"] == 0
        columns = {c["name"]: c for c in parity["columns"]}
        assert all(c["unequal"] == 0 for c in columns.values())
        assert {"text_classification": {"label", "score"}, "generation": {"generated", "num_tokens"}}[
            name
        ] <= set(columns)
        assert (out / parity["report"]["json"]).is_file() and (out / parity["report"]["html"]).is_file()
    table = (out / "results.md").read_text()
    assert "| workload | rows | GPU rows/s | CPU rows/s | GPU/CPU |" in table
    for name, count in ROWS.items():
        assert f"| {name} | {count:,} |" in table
    assert sorted(p.name for p in out.iterdir()) == [
        "generation",
        "logs",
        "results.json",
        "results.md",
        "text_classification",
    ]


def test_no_cuda_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_check",
            "--out",
            str(tmp_path / "results"),
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=REPO,
        env=env_without_pyspark(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("no CUDA device visible: ") and len(done.stderr.strip().splitlines()) == 1
    ), done.stderr
    assert (
        not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()
    )  # stopped before building


def test_nvidia_smi_output_is_parsed():
    # What `nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200`
    # prints: one line per GPU per sample, and [N/A] where a value is not available.
    text = "0, 0, 512\n1, 0, 3\n0, 87, 10240\n1, 0, 3\n0, 95, 10300\n1, [N/A], 3\n\n0, 0, 10300\n1, 0, 3\n"
    samples, other = gpu_check.parse_nvidia_smi(text)
    assert samples[:3] == [(0, 0.0, 512.0), (1, 0.0, 3.0), (0, 87.0, 10240.0)] and len(samples) == 7
    assert other == ["1, [N/A], 3"]
    summary = gpu_check.summarize_gpu_samples(samples, other)
    assert summary["gpu_index"] == 0 and summary["gpus"] == 2 and summary["samples"] == 7
    assert summary["utilization_mean"] == pytest.approx(45.5) and summary["utilization_p50"] == pytest.approx(
        43.5
    )
    assert summary["utilization_max"] == 95 and summary["utilization_busy_mean"] == pytest.approx(91.0)
    assert (
        summary["memory_before_mib"] == 512
        and summary["memory_peak_mib"] == 10300
        and summary["reason"] is None
    )


def test_sampler_starts_and_stops_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "nvidia-smi"  # prints like the real one, every 20 ms, until stopped
    fake.parent.mkdir()
    fake.write_text(
        '#!/bin/sh\ni=0\nwhile true; do echo "0, $((i % 2 * 90)), $((1000 + i))"; i=$((i + 1)); sleep '
        "0.02; done\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with gpu_check.GpuSampler(tmp_path / "samples.csv") as sampler:
        subprocess.run(["sleep", "0.5"], check=True)
    assert sampler.process.poll() is not None  # stopped with the block
    summary = sampler.summary()
    assert summary["samples"] >= 5 and summary["reason"] is None
    assert summary["utilization_max"] == 90 and summary["memory_before_mib"] == 1000
    assert summary["memory_peak_mib"] == 999 + summary["samples"]


def test_nvidia_smi_failure_gives_a_reason_not_numbers():
    failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    summary = gpu_check.summarize_gpu_samples(*gpu_check.parse_nvidia_smi(failed))
    assert (
        summary["samples"] == 0 and summary["utilization_mean"] is None and summary["memory_peak_mib"] is None
    )
    assert summary["reason"].startswith("NVIDIA-SMI has failed")


def write_output(folder: Path, labels: list[int]) -> Path:
    folder.mkdir(parents=True)
    scores = [0.25 + 0.5 * label for label in labels]
    pq.write_table(
        pa.table({"id": pa.array(range(len(labels)), pa.int64()), "label": labels, "score": scores}),
        folder / "part-00000.parquet",
    )
    return folder


def test_a_parity_failure_exits_1(tmp_path):
    job = REPO / "examples" / "text_classification" / "job.toml"  # its [parity]: label exact, score abs 1e-6
    labels = [0, 1, 1, 0, 1, 0, 0, 1]
    cpu = write_output(tmp_path / "cpu", labels)
    same = write_output(tmp_path / "same", labels)
    flipped = write_output(tmp_path / "flipped", [1 - labels[0], *labels[1:]])
    run = {"error": None, "device": "cuda", "log": "gpu.log"}
    cpu_run = {**run, "device": "cpu", "log": "cpu.log"}

    agree = gpu_check.check_parity(job, cpu, same, tmp_path / "report-same", tmp_path / "work")
    assert agree["ok"] and agree["verdict"] == "ok"
    assert gpu_check.exit_status([{"problems": gpu_check.record_problems(run, cpu_run, agree, "cuda")}]) == 0

    differ = gpu_check.check_parity(job, cpu, flipped, tmp_path / "report-flipped", tmp_path / "work")
    assert not differ["ok"] and differ["verdict"] == "FAILED"
    label = next(c for c in differ["columns"] if c["name"] == "label")
    assert label["unequal"] == 1 and label["verdict"] == "DIFFERS"
    assert differ["samples"][0]["key"] == {"id": 0}
    problems = gpu_check.record_problems(run, cpu_run, differ, "cuda")
    assert any("label" in p for p in problems)
    assert gpu_check.exit_status([{"problems": problems}]) == 1
    assert (tmp_path / "report-flipped" / "parity.html").is_file()


def test_a_run_on_the_wrong_device_fails():
    cpu_run = {"error": None, "device": "cpu", "log": "cpu.log"}
    for device in (
        "cuda",
        "cuda:0",
        "cuda:0,cuda:1",
    ):  # the manifest's device: the engine's, or what each worker noted
        assert (
            gpu_check.record_problems({**cpu_run, "device": device}, cpu_run, {"problems": []}, "cuda") == []
        )
    for device in ("cpu", "cpu,cuda:0"):
        problems = gpu_check.record_problems({**cpu_run, "device": device}, cpu_run, {"problems": []}, "cuda")
        assert problems == [f"GPU run ran on {device}, not cuda (its _manifest.json)"]
    problems = gpu_check.record_problems(
        {**cpu_run, "device": "cuda:0"}, {**cpu_run, "device": "cuda:0"}, None, "cuda"
    )
    assert problems == [
        "CPU run ran on cuda:0, not cpu (its _manifest.json)",
        "parity not checked: a run failed",
    ]


def test_rows_per_workload():
    workloads = ["text_classification", "generation"]
    assert gpu_check.parse_rows(None, workloads) == {"text_classification": 200_000, "generation": 20_000}
    assert gpu_check.parse_rows("1_000,generation=64", workloads) == {
        "text_classification": 1_000,
        "generation": 64,
    }
    for bad in ("images=5", "generation=0", "many"):
        with pytest.raises(ValueError, match="--rows"):
            gpu_check.parse_rows(bad, workloads)
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(["--workloads", "nope"])
    assert exc.value.code == 2
