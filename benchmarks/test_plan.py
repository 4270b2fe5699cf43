"""Every preset plans the trials of every workload and contender, without building or starting
anything: a workload a contender cannot plan for (the crash that stopped ``make bench`` after
three minutes of builds) fails here in seconds."""

from __future__ import annotations

import pytest

from benchmarks import run
from benchmarks.contenders import ALL, LEGACY
from benchmarks.workloads import BENCH_WORKLOADS, PRESETS, available_workloads


@pytest.mark.parametrize("isolation", ["contender", "engine"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_workload_and_contender_is_planned(preset, isolation):
    args = run.parse_args(["--size", preset, "--isolation", isolation])
    workloads = available_workloads()
    assert args.workloads == workloads and args.contenders == list(ALL)
    assert set(BENCH_WORKLOADS) <= set(workloads) and "spark_pipeline" in workloads
    sizes = run.plan_sizes(preset, None, workloads, True)
    groups = run.plan_trials(args, sizes)
    planned = {(w, c) for w, trials in groups for c, _ in trials}
    with_legacy = {"spark_pipeline"}  # the one example built from a saved Spark ML pipeline
    expected = {(w, c) for w in workloads for c in ALL if c != LEGACY or w in with_legacy}
    assert planned == expected
    for workload in workloads:  # every contender at every table size
        table = sizes[workload]["table"]
        rows = {(c, r) for w, trials in groups if w == workload for c, r in trials}
        assert {(c, r) for c, _ in rows for r in table} <= rows
    if isolation == "contender":
        assert all(len(trials) == 1 for _, trials in groups)
