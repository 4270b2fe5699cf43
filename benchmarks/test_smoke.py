"""A tiny benchmark run, the only benchmark in ``make test``: the real runner, every contender.

One workload (tabular_torch, 2,000 rows, built into a temporary cache), one process per engine,
cold runs only (``--repeat 0``). It checks the plumbing, not the speed: every contender ran and
produced the ceiling's answers, every number the table shows is there and plausible, and the
three result files are written. About 45 s on 2 idle CPUs, building the workload included.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import run
from benchmarks.contenders import ALL, applies
from benchmarks.workloads import PRESETS

pytestmark = [pytest.mark.spark, pytest.mark.ray, pytest.mark.slow]
WORKLOAD = "tabular_torch"
ROWS = PRESETS["smoke"]["table"][WORKLOAD][0]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    status = run.main(
        [
            "--size",
            "smoke",
            "--workloads",
            WORKLOAD,
            "--isolation",
            "engine",
            "--repeat",
            "0",
            "--no-scaling",
            "--out",
            str(out / "results"),
            "--cache",
            str(out / "cache"),
            "--timeout",
            "300",
        ]
    )
    return status, out / "results"


def test_every_contender_ran_and_agreed(results):
    status, out = results
    data = json.loads((out / "results.json").read_text())
    summaries = {s["contender"]: s for s in data["summaries"]}
    assert sorted(summaries) == sorted(c for c in ALL if applies(c, WORKLOAD))
    for name, s in summaries.items():
        assert s["error"] is None, f"{name}: {s['error']}"
        assert s["rows"] == ROWS
        assert s["output_check"] == "ok", f"{name}: {s['output_check']}"
        assert s["digest"]["rows"] == ROWS
        assert s["job_rows_per_second"] > 0
        assert 0 < s["end_to_end_seconds"] < 300
        assert s["cpu_seconds_per_million_rows"] > 0
        assert s["driver_peak_mib"] > 50, f"{name}: a Python driver with pyarrow holds more than 50 MiB"
        assert s["workers_peak_mib"] > 10, f"{name}: every contender runs its model in worker processes"
    assert status == 0


def test_engines_were_measured(results):
    _, out = results
    data = json.loads((out / "results.json").read_text())
    summaries = {s["contender"]: s for s in data["summaries"]}
    assert summaries["spark"]["startup_seconds"] > 0.5  # a JVM cannot start faster
    assert summaries["ray"]["startup_seconds"] > 0.2
    assert "jvm" in summaries["spark"]["workers_peak_by_kind_mib"]
    assert "ray-system" in summaries["ray"]["workers_peak_by_kind_mib"]
    assert summaries["ceiling"]["job_vs_ceiling"] == pytest.approx(1.0)
    assert summaries["ray"]["ray_over_spark"] > 0
    assert data["meta"]["machine"]["cpus"] >= 1 and data["meta"]["machine"]["device"]
    names = [t["target"] for t in data["targets"]]
    assert any("ceiling" in n for n in names) and any("ray >= spark" in n for n in names)
    assert all(isinstance(t["met"], bool) and t["detail"] for t in data["targets"])


def test_report_files_are_written(results):
    _, out = results
    table = (out / "results.md").read_text()
    assert "| workload | rows | contender |" in table
    for name in ALL:
        assert (f"| {WORKLOAD} | {ROWS:,} | {name} |" in table) == applies(name, WORKLOAD)
    png = (out / "throughput.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
