"""The benchmark's targets (issues 4 and 16), one small function each, all giving ``Target`` values.

``throughput(summaries, table_sizes)`` evaluates the trials' targets (``benchmarks.report``'s
summaries); ``phases(summary)`` the phase trace's (``benchmarks.phases.summarize``). Every ratio
is between contenders measured in the same run, on the same input files.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.contenders import EXECUTORS, HAND_WRITTEN, RELOADING
from benchmarks.harness import Target
from benchmarks.workloads import TORCH_WORKLOADS

CEILING_RATIO = 0.9  # each executor's steady throughput vs the ceiling, tabular_torch at 1M rows
CEILING_WORKLOAD, CEILING_ROWS = "tabular_torch", 1_000_000
HAND_WRITTEN_RATIO = 1.0  # each executor vs every hand-written contender, every workload
RELOAD_RATIO = 3.0  # each executor vs the per-batch-reload contenders, torch workloads
PER_JOB_CONTENDER = {"ray": "ray_map_batches", "spark": "spark_predict_batch_udf"}  # issue 16, smallest size
HEAVY_WORKLOAD = "heavy_mlp"  # the model-dominated workload: ray >= 0.9x the ceiling there too
FLAT_MEMORY_GROWTH = 1.25  # peak at the largest input / peak at the smallest
COLD_VS_FLOOR = 0.75  # a cold 1-row job, start to exit, against the engine's hand-written floor
WARM_LIMIT_S = 3.0  # a 1-row job against a warm engine on this machine, start to exit

Key = tuple[str, int, str]  # (workload, rows, contender)


def pair_ratio(a: dict, b: dict) -> tuple[float | None, str]:
    """a's throughput over b's: steady state when both have it, else whole jobs."""
    for key, basis in (("steady_rows_per_second", "steady"), ("job_rows_per_second", "job")):
        if a.get(key) and b.get(key):
            return a[key] / b[key], basis
    return None, ""


# --- throughput trials ----------------------------------------------------------------------------


def executors_vs_ceiling(by_key: dict[Key, dict], sizes: dict[str, list[int]]) -> list[Target]:
    """Each executor >= 0.9x the ceiling on tabular_torch at 1M rows (or its largest size)."""
    measured = [n for n in sizes.get(CEILING_WORKLOAD, []) if (CEILING_WORKLOAD, n, "ceiling") in by_key]
    if not measured:
        return []
    rows = CEILING_ROWS if CEILING_ROWS in measured else max(measured)
    ceiling = by_key[(CEILING_WORKLOAD, rows, "ceiling")]
    found = []
    for name in EXECUTORS:
        mine = by_key.get((CEILING_WORKLOAD, rows, name))
        value, basis = pair_ratio(mine, ceiling) if mine else (None, "")
        if value is None:
            continue
        stated = "" if rows == CEILING_ROWS else "; the target is stated at 1M"
        note = f" ({basis} rate at {rows:,} rows{stated})"
        if mine.get("steady_engine_rows_per_second") and ceiling.get("steady_rows_per_second"):
            engine = mine["steady_engine_rows_per_second"] / ceiling["steady_rows_per_second"]
            note += f"; engine alone, without the runner's key checks: {engine:.2f}x"
        found.append(
            Target.at_least(
                f"{name} >= {CEILING_RATIO}x ceiling, {CEILING_WORKLOAD}", value, CEILING_RATIO, note
            )
        )
    return found


def executors_vs_hand_written(by_key: dict[Key, dict], sizes: dict[str, list[int]]) -> list[Target]:
    """Each executor >= every hand-written contender, and >= 3x the per-batch reloaders on torch
    workloads: the rate at the largest size, the smallest size's whole jobs beside it (fixed
    per-job costs decide small jobs)."""
    found = []
    for workload in _workloads(by_key):
        ordered = sorted(sizes.get(workload, []))
        others = [(h, HAND_WRITTEN_RATIO) for h in HAND_WRITTEN]
        others += [(r, RELOAD_RATIO) for r in RELOADING] if workload in TORCH_WORKLOADS else []
        for name in EXECUTORS:
            for other, threshold in others:
                pairs = [
                    (n, by_key.get((workload, n, name)), by_key.get((workload, n, other))) for n in ordered
                ]
                pairs = [(n, a, b) for n, a, b in pairs if a and b]
                if not pairs:
                    continue
                rows, a, b = pairs[-1]
                value, basis = pair_ratio(a, b)
                note = f" ({basis} rate at {rows:,} rows"
                if len(pairs) > 1:
                    small, a0, b0 = pairs[0]
                    ratio = a0["job_rows_per_second"] / b0["job_rows_per_second"]
                    note += f"; whole jobs at {small:,} rows: {ratio:.2f}x"
                found.append(
                    Target.at_least(
                        f"{name} >= {threshold:g}x {other}, {workload}", value, threshold, note + ")"
                    )
                )
    return found


def per_job_on_a_running_engine(by_key: dict[Key, dict], sizes: dict[str, list[int]]) -> list[Target]:
    """Issue 16: each executor's whole warm job at the smallest size >= the hand-written pipeline
    on its engine."""
    found = []
    for workload in _workloads(by_key):
        measured = _sizes_with_ray(by_key, sizes, workload)
        if not measured:
            continue
        for name, other in PER_JOB_CONTENDER.items():
            mine, theirs = (
                by_key.get((workload, measured[0], name)),
                by_key.get((workload, measured[0], other)),
            )
            if mine and theirs and mine.get("measured_on") == "warm":
                found.append(
                    Target.at_least(
                        f"{name} >= {other} per job on a running engine, {workload}",
                        mine["job_rows_per_second"] / theirs["job_rows_per_second"],
                        1.0,
                        f" (whole warm jobs at {measured[0]:,} rows)",
                    )
                )
    return found


def ray_over_spark(by_key: dict[Key, dict], sizes: dict[str, list[int]]) -> list[Target]:
    """Issue 16: Ray >= Spark at every workload's largest size."""
    found = []
    for workload in _workloads(by_key):
        measured = _sizes_with_ray(by_key, sizes, workload)
        if not measured:
            continue
        ray, spark = (
            by_key.get((workload, measured[-1], "ray")),
            by_key.get((workload, measured[-1], "spark")),
        )
        if ray and spark and ray.get("ray_over_spark"):
            note = f" ({ray['ray_over_spark_basis']} rate at {measured[-1]:,} rows)"
            found.append(Target.at_least(f"ray >= spark, {workload}", ray["ray_over_spark"], 1.0, note))
    return found


def ray_vs_ceiling_on_a_heavy_model(by_key: dict[Key, dict], sizes: dict[str, list[int]]) -> list[Target]:
    """Ray >= 0.9x the ceiling where the model is the work (heavy_mlp, its largest size)."""
    heavy = [rows for (w, rows, c) in by_key if w == HEAVY_WORKLOAD and c == "ray"]
    if not heavy:
        return []
    rows = max(heavy)
    ray, ceiling = by_key[(HEAVY_WORKLOAD, rows, "ray")], by_key.get((HEAVY_WORKLOAD, rows, "ceiling"))
    value, basis = pair_ratio(ray, ceiling) if ceiling else (None, "")
    if value is None:
        return []
    name = f"ray >= {CEILING_RATIO}x ceiling, {HEAVY_WORKLOAD}"
    return [Target.at_least(name, value, CEILING_RATIO, f" ({basis} rate at {rows:,} rows)")]


def flat_memory(by_key: dict[Key, dict], sizes: dict[str, list[int]]) -> list[Target]:
    """Each executor's driver and workers peak memory grows at most 1.25x from the smallest input
    to one at least 10x larger."""
    found = []
    for workload in _workloads(by_key):
        for name in EXECUTORS:
            points = sorted((s["rows"], s) for (w, _, c), s in by_key.items() if w == workload and c == name)
            if len(points) < 2 or points[-1][0] < 10 * points[0][0]:
                continue
            (small, first), (large, last) = points[0], points[-1]
            for part in ("driver_peak_mib", "workers_peak_mib"):
                growth = last[part] / first[part] if first[part] else float("inf")
                slope = (last[part] - first[part]) / (large - small) * 1e6
                detail = (
                    f"{first[part]:,.0f} MiB at {small:,} rows -> {last[part]:,.0f} MiB at {large:,} rows "
                    f"(x{growth:.2f}, {slope:+,.0f} MiB per 1M rows)"
                )
                name_ = f"{name} {part.split('_')[0]} peak memory flat, {workload}"
                found.append(Target.at_most(name_, growth, FLAT_MEMORY_GROWTH, detail))
    return found


THROUGHPUT: tuple[Callable[[dict[Key, dict], dict[str, list[int]]], list[Target]], ...] = (
    executors_vs_ceiling,
    executors_vs_hand_written,
    per_job_on_a_running_engine,
    ray_over_spark,
    ray_vs_ceiling_on_a_heavy_model,
    flat_memory,
)


def throughput(summaries: list[dict], table_sizes: dict[str, list[int]]) -> list[dict]:
    """Every throughput target the trials measured, as ``results.json`` keeps them."""
    by_key = {
        (s["workload"], s["rows"], s["contender"]): s for s in summaries if s.get("job_rows_per_second")
    }
    return [t.to_dict() for evaluate in THROUGHPUT for t in evaluate(by_key, table_sizes)]


def _workloads(by_key: dict[Key, dict]) -> list[str]:
    return sorted({w for w, _, _ in by_key})


def _sizes_with_ray(by_key: dict[Key, dict], sizes: dict[str, list[int]], workload: str) -> list[int]:
    return sorted(n for n in sizes.get(workload, []) if (workload, n, "ray") in by_key)


# --- the phase trace (fresh processes) -------------------------------------------------------------


def cold_job_vs_floor(entries: list[dict]) -> list[Target]:
    """A cold 1-row job, start to exit, <= 0.75x its engine's hand-written floor."""
    smallest = min((e["rows"] for e in entries), default=None)
    found = []
    for e in entries:
        kind, engine = e["contender"].split()
        if kind != "cli" or e["rows"] != smallest or "exit_vs_floor" not in e:
            continue
        value = e["exit_vs_floor"]
        detail = (
            f"{value:.2f}x: {e['exit_seconds']:.1f} s against the floor's {e['exit_seconds'] / value:.1f} s, "
            f"start to exit, {e['rows']:,} rows (CPU {e['cpu_vs_floor']:.2f}x)"
        )
        if value > COLD_VS_FLOOR:
            detail += f", {value / COLD_VS_FLOOR - 1:.0%} over"
        name = f"{engine} cold job <= {COLD_VS_FLOOR}x its hand-written floor"
        found.append(Target.at_most(name, value, COLD_VS_FLOOR, detail))
    return found


def job_on_a_warm_engine(entries: list[dict]) -> list[Target]:
    """A 1-row job on a warm engine on this machine, start to exit, <= 3 s."""
    found = []
    for e in entries:
        kind, engine = e["contender"].split()
        if kind != "warm":
            continue
        value = e["exit_seconds"]
        over = "" if value <= WARM_LIMIT_S else f", {value - WARM_LIMIT_S:.1f} s over"
        detail = f"{value:.1f} s start to exit, 1 row{over}"
        found.append(
            Target.at_most(
                f"{engine} job on a warm engine <= {WARM_LIMIT_S:g} s", value, WARM_LIMIT_S, detail
            )
        )
    return found


def nothing_outlives_the_cli(entries: list[dict]) -> list[Target]:
    """No process of a run is alive 30 s after the command exited (only misses are listed)."""
    return [
        Target.at_most(
            f"nothing outlives the CLI ({e['contender']})",
            len(e["lingering"]),
            0,
            "; ".join(e["lingering"][:3]),
        )
        for e in entries
        if e["lingering"]
    ]


PHASES: tuple[Callable[[list[dict]], list[Target]], ...] = (
    cold_job_vs_floor,
    job_on_a_warm_engine,
    nothing_outlives_the_cli,
)


def phases(summary: dict) -> list[dict]:
    """Every target of the phase trace's summary, as ``phases.json`` and ``results.json`` keep them."""
    entries = [e for e in summary["start_to_exit"] if "exit_seconds" in e]
    return [t.to_dict() for evaluate in PHASES for t in evaluate(entries)]
