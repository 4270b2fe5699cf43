"""Turns trial records into ``results.json``, ``results.md`` and ``throughput.png`` (``finish``).

Steady-state seconds are the median of the warm runs (pytest-benchmark's ``Stats``); every ratio
is between contenders measured in the same ``make bench`` run, on the same input files.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

from pytest_benchmark.stats import Stats

from benchmarks import phases as phase_trace
from benchmarks import targets as target_list
from benchmarks.contenders import ALL, EXECUTORS, LEGACY, role
from benchmarks.harness import machine_line, number, table, targets_lines
from benchmarks.targets import pair_ratio

DIGEST_TOLERANCE = 1e-5  # relative, on output sums (float32 models round differently per batch)


def summarize(workload: str, record: dict) -> dict:
    """One contender at one size, from its cold and warm runs: the job's rate, memory, CPU."""
    rows, runs = record["rows"], record["runs"]
    summary = {
        "workload": workload,
        "rows": rows,
        "contender": record["contender"],
        "role": role(record["contender"]),
        "error": record.get("error"),
        "device": record.get("device"),
        "startup_seconds": record.get("startup_seconds"),
    }
    if not runs:
        return summary
    cold = runs[0]
    warm = [r for r in runs if r["kind"] == "warm"] or [cold]
    seconds, engine = Stats(), Stats()
    for run in warm:
        seconds.update(run["seconds"])
        engine.update(run["engine_seconds"])
    cpu_kinds = sorted({k for r in warm for k in r["cpu_seconds_by_kind"]})
    summary.update(
        {
            "measured_on": "warm" if warm[0] is not cold else "cold",
            "seconds": seconds.as_dict(),
            "engine_seconds": engine.as_dict(),
            "job_rows_per_second": rows / seconds.median if seconds.median > 0 else None,
            "job_engine_rows_per_second": rows / engine.median if engine.median > 0 else None,
            "end_to_end_seconds": cold.get("end_to_end_seconds"),
            "end_to_end_exact": cold.get("end_to_end_exact"),
            "first_run_seconds": cold["seconds"],
            "runner_overhead_seconds": statistics.median(r["seconds"] - r["engine_seconds"] for r in warm),
            "cpu_seconds_per_million_rows": statistics.median(r["cpu_seconds"] for r in warm) / rows * 1e6
            if rows
            else None,
            "cpu_seconds_per_million_rows_by_kind": {
                k: round(
                    statistics.median(r["cpu_seconds_by_kind"].get(k, 0.0) for r in warm) / rows * 1e6, 2
                )
                for k in cpu_kinds
            }
            if rows
            else {},
            "driver_peak_mib": max(r["driver_peak_mib"] for r in runs),
            "workers_peak_mib": max(r["workers_peak_mib"] for r in runs),
            "workers_peak_by_kind_mib": max(runs, key=lambda r: r["workers_peak_mib"])[
                "workers_peak_by_kind_mib"
            ],
            "load_average": [min(r["load_before"] for r in runs), max(r["load_after"] for r in runs)],
            "digest": cold["digest"],
        }
    )
    return summary


def add_ratios(summaries: list[dict], table_sizes: dict[str, list[int]]) -> None:
    """Steady-state rates (between consecutive table sizes), ratios to the ceiling, Ray over Spark,
    and the output check against the ceiling's answers."""
    by_contender: dict[tuple, dict[int, dict]] = {}
    for s in summaries:
        if s.get("job_rows_per_second"):
            by_contender.setdefault((s["workload"], s["contender"]), {})[s["rows"]] = s
    for (workload, _), points in by_contender.items():
        sizes = [n for n in sorted(table_sizes.get(workload, [])) if n in points]
        for small, large in itertools.pairwise(sizes):
            a, b = points[small], points[large]
            for key, out in (
                ("seconds", "steady_rows_per_second"),
                ("engine_seconds", "steady_engine_rows_per_second"),
            ):
                extra = b[key]["median"] - a[key]["median"]
                b[out] = (large - small) / extra if extra > 0 else None
            b["steady_between"] = [small, large]
    groups: dict[tuple, dict[str, dict]] = {}
    for s in summaries:
        groups.setdefault((s["workload"], s["rows"]), {})[s["contender"]] = s
    for group in groups.values():
        ceiling = group.get("ceiling", {})
        for s in group.values():
            for key, out in (
                ("steady_rows_per_second", "steady_vs_ceiling"),
                ("job_rows_per_second", "job_vs_ceiling"),
            ):
                s[out] = s[key] / ceiling[key] if s.get(key) and ceiling.get(key) else None
            cpu, ceiling_cpu = (
                s.get("cpu_seconds_per_million_rows"),
                ceiling.get("cpu_seconds_per_million_rows"),
            )
            s["cpu_efficiency_vs_ceiling"] = ceiling_cpu / cpu if cpu and ceiling_cpu else None
        if "ray" in group and "spark" in group:
            group["ray"]["ray_over_spark"], group["ray"]["ray_over_spark_basis"] = pair_ratio(
                group["ray"], group["spark"]
            )
        for name in EXECUTORS:  # an imported bundle against the pipeline it replaces
            if LEGACY in group and name in group:
                group[name]["over_legacy"], group[name]["over_legacy_basis"] = pair_ratio(
                    group[name], group[LEGACY]
                )
        reference = next((group[n] for n in ("ceiling", *ALL) if n in group and group[n].get("digest")), None)
        for s in group.values():
            s["output_check"] = (
                _compare_digests(reference["digest"], s.get("digest")) if reference else "not checked"
            )


def _compare_digests(expected: dict, got: dict | None) -> str:
    if not got:
        return "no output"
    if got["rows"] != expected["rows"]:
        return f"rows {got['rows']} != {expected['rows']}"
    for name, want in expected.items():
        if name == "rows":
            continue
        have = got.get(name)
        if have is None or have["nulls"] != want["nulls"]:
            return f"{name}: nulls {have and have['nulls']} != {want['nulls']}"
        a, b = have["sum"] or 0.0, want["sum"] or 0.0
        if abs(a - b) > DIGEST_TOLERANCE * max(abs(a), abs(b), 1.0):
            return f"{name}: sum {a!r} != {b!r}"
    return "ok"


# ---------------------------------------------------------------------------------------------


def write(out_dir: Path, meta: dict, summaries: list[dict], targets: list[dict], trials: list[dict]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps(
            {"meta": meta, "summaries": summaries, "targets": targets, "trials": trials},
            indent=1,
            default=str,
        )
    )
    (out_dir / "results.md").write_text(markdown(meta, summaries, targets))
    plot(out_dir / "throughput.png", summaries, meta)


def finish(out_dir: Path, meta: dict, results: list[dict]) -> list[dict]:
    """Summaries, ratios and targets (the trials' and the phase trace's) from the trial records;
    writes the three result files and returns the summaries."""
    summaries = [summarize(result["workload"], record) for result in results for record in result["trials"]]
    table_sizes = {w: sizes["table"] for w, sizes in meta["config"]["sizes"].items()}
    add_ratios(summaries, table_sizes)
    targets = target_list.throughput(summaries, table_sizes) + (meta.get("phases") or {}).get("targets", [])
    write(out_dir, meta, summaries, targets, results)
    return summaries


COLUMNS = (
    "workload",
    "rows",
    "contender",
    "end-to-end s",
    "startup s",
    "job rows/s",
    "steady rows/s",
    "steady x ceiling",
    "job x ceiling",
    "Ray/Spark",
    "CPU s per 1M rows",
    "CPU x ceiling",
    "driver peak MiB",
    "workers peak MiB",
    "output",
)
NUMERIC = set(COLUMNS[1:2] + COLUMNS[3:14])


def row_cells(s: dict) -> list[str]:
    """One table row: a failed trial says why in its first number's cell."""
    cells = [s["workload"], f"{s['rows']:,}", s["contender"]]
    if not s.get("job_rows_per_second"):
        return cells + [f"failed: {s.get('error')}"] + [""] * 11
    ray_spark = number(s.get("ray_over_spark"), ".2f") + (
        " (job)" if s.get("ray_over_spark_basis") == "job" else ""
    )
    return cells + [
        number(s.get("end_to_end_seconds"), ".1f") + ("" if s.get("end_to_end_exact") else "~"),
        number(s.get("startup_seconds"), ".1f"),
        number(s.get("job_rows_per_second"), ",.0f"),
        number(s.get("steady_rows_per_second"), ",.0f"),
        number(s.get("steady_vs_ceiling"), ".2f"),
        number(s.get("job_vs_ceiling"), ".2f"),
        ray_spark if s["contender"] == "ray" else "",
        number(s.get("cpu_seconds_per_million_rows"), ",.1f"),
        number(s.get("cpu_efficiency_vs_ceiling"), ".2f"),
        number(s.get("driver_peak_mib"), ",.0f"),
        number(s.get("workers_peak_mib"), ",.0f"),
        s.get("output_check", ""),
    ]


LEGEND = (
    "Job rows/s: rows / median seconds of the warm runs, each a whole job (for our executors, `run_job` "
    "with its key checks; `engine` rates without them are in results.json). Steady rows/s: the extra rows "
    "over the extra seconds from the next smaller size, so fixed per-job costs (planning, starting actors "
    "or Python workers, listing files) cancel out. x ceiling compares the same rate at the same size; "
    "Ray/Spark is steady where both have it. End-to-end: process start to the end of the first (cold) "
    "run, imports and engine start included (`~`: startup shared with earlier trials in one process). "
    "CPU s: user+system of the whole process tree, far less sensitive than wall time to other load on a "
    "shared machine; CPU x ceiling is the ceiling's CPU per row over this contender's, which bounds how "
    "close to the ceiling it can get on a machine whose CPUs are all busy. Driver peak: VmHWM of the "
    "driver; workers peak: the largest sampled sum of PSS over every process below it (JVM, Python "
    "workers, Ray). Output: rows, key sum and output sums against the ceiling's."
)


def markdown(meta: dict, summaries: list[dict], targets: list[dict]) -> str:
    """``results.md``: the machine, the throughput table, the bundle against legacy, the targets,
    the phase trace's tables and a legend."""
    config = meta["config"]
    lines = [
        f"# Benchmark results, {meta['started']}",
        "",
        f"{machine_line(meta)} "
        f"Load average {meta['load_average'][0]:.1f} at the start, {meta['load_average'][1]:.1f} at the end. "
        f"Size `{config['size']}`, at least {config['repeat']} warm run(s) per trial, a fresh process per "
        f"{config['isolation']}, inputs in {config['files']} Parquet files. {meta['seconds'] / 60:.1f} "
        "minutes.",
        "",
    ]
    order = {name: i for i, name in enumerate(ALL)}
    ordered = sorted(summaries, key=lambda s: (s["workload"], s["rows"], order.get(s["contender"], 99)))
    lines += table(COLUMNS, map(row_cells, ordered), NUMERIC)
    against_legacy = sorted(
        (s for s in summaries if s.get("over_legacy")),
        key=lambda s: (s["workload"], s["rows"], s["contender"]),
    )
    if against_legacy:
        lines += [
            "",
            "Imported bundle against its original Spark ML pipeline (`legacy`, PipelineModel.transform):",
            "",
        ]
        lines += [
            f"- {s['workload']}, {s['rows']:,} rows: the bundle on {s['contender']} "
            f"{s['over_legacy']:.2f}x legacy ({s['over_legacy_basis']} rate)"
            for s in against_legacy
        ]
    lines += ["", "Targets:", "", *targets_lines(targets)]
    phases = meta.get("phases") or {}
    if phases.get("start_to_exit") is not None:
        lines += ["", phase_trace.markdown(phases, phases["meta"])]
    elif phases.get("error"):
        lines += ["", f"Phase trace: failed: {phases['error']}"]
    return "\n".join([*lines, "", LEGEND, ""])


def plot(path: Path, summaries: list[dict], meta: dict) -> None:
    """Steady rows/s and peak memory against input size, one column per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    workloads = sorted({s["workload"] for s in summaries if s.get("job_rows_per_second")})
    if not workloads:
        return
    fig, axes = plt.subplots(2, len(workloads), figsize=(4.2 * len(workloads), 7.5), squeeze=False)
    styles = {
        "spark": ("tab:orange", "o", "-"),
        "ray": ("tab:blue", "s", "-"),
        "ceiling": ("black", "^", "--"),
        "spark_pandas_udf": ("tab:red", "x", ":"),
        "spark_predict_batch_udf": ("tab:brown", "+", ":"),
        "ray_map_batches": ("tab:cyan", "d", ":"),
        LEGACY: ("tab:green", "v", "-."),
    }
    for column, workload in enumerate(workloads):
        top, bottom = axes[0][column], axes[1][column]
        for name in ALL:
            points = sorted(
                (s["rows"], s)
                for s in summaries
                if s["workload"] == workload and s["contender"] == name and s.get("job_rows_per_second")
            )
            if not points:
                continue
            color, marker, line = styles[name]
            xs = [p[0] for p in points]
            top.plot(
                xs,
                [p[1]["job_rows_per_second"] for p in points],
                color=color,
                marker=marker,
                linestyle=line,
                label=name,
            )
            if name in EXECUTORS:
                bottom.plot(
                    xs,
                    [p[1]["workers_peak_mib"] for p in points],
                    color=color,
                    marker=marker,
                    label=f"{name} workers",
                )
                bottom.plot(
                    xs,
                    [p[1]["driver_peak_mib"] for p in points],
                    color=color,
                    marker=marker,
                    linestyle="--",
                    label=f"{name} driver",
                )
        top.set_title(workload)
        sizes = sorted({s["rows"] for s in summaries if s["workload"] == workload})
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlabel("input rows")
        top.set_yscale("log")
        top.set_ylabel("rows/s (whole job, warm)")
        bottom.set_ylabel("peak memory (MiB)")
        bottom.set_ylim(bottom=0)
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    machine = meta["machine"]
    fig.suptitle(f"{machine['cpus']} CPUs, {machine['device']} - {meta['started']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
