"""``make bench``: Spark vs Ray vs what users write by hand vs the machine's own limit.

    python -m benchmarks.run [--size default|small|smoke|ROWS[,ROWS...]] [--workloads a,b]
                             [--contenders a,b] [--repeat N] [--no-scaling] [--isolation contender|engine]

Every (workload, size, contender) runs in a fresh Python process (``benchmarks.trial``), so each
engine starts from nothing and its startup is real; ``--isolation engine`` shares one process per
engine instead (startup measured once; faster, used by the smoke test). Writes
``benchmarks/results/<timestamp>/`` (``results/gpu/<timestamp>/`` on a CUDA machine) with
``results.json``, ``results.md`` and ``throughput.png``.
Exit status 1 when a trial failed or a contender's output disagreed with the ceiling's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks import report
from benchmarks.contenders import ALL, ENGINE, EXECUTORS, applies
from benchmarks.harness import RESULTS, last_line, machine_record, run_child
from benchmarks.workloads import (
    DEFAULT_CACHE,
    PRESETS,
    available_workloads,
    default_files,
    plan_sizes,
    prepare,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size",
        default=os.environ.get("BENCH_SIZE", "default"),
        help=f"a preset ({', '.join(PRESETS)}) or rows for every workload, e.g. 100000,1000000 "
        "(default: $BENCH_SIZE or 'default')",
    )
    parser.add_argument(
        "--workloads", help="comma-separated (default: every example with build.py and job.toml)"
    )
    parser.add_argument(
        "--contenders", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=int(os.environ.get("BENCH_REPEAT", "1")),
        help="at least this many warm runs after the cold one, per trial (0: measure the cold run)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=2.0,
        help="more warm runs (up to 10) until they add up to this many seconds, for fast contenders",
    )
    parser.add_argument(
        "--no-scaling",
        action="store_true",
        help="skip the executors' extra sizes (throughput and memory vs size)",
    )
    parser.add_argument(
        "--isolation",
        choices=("contender", "engine"),
        default="contender",
        help="a fresh process per contender and size (default), or one per engine and workload",
    )
    parser.add_argument(
        "--files", type=int, default=default_files(), help="Parquet files per input (default: 2 x CPUs)"
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default: benchmarks/results/[gpu/]<timestamp>)"
    )
    parser.add_argument(
        "--phase-rounds",
        type=int,
        default=None,
        help="rounds of the fresh-process phase trace and floors (benchmarks.phases); default 2, 0 for smoke",
    )
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-engine runs of the phase trace")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="where built workloads are kept between runs"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds before one benchmark process is killed"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rewrite-report",
        type=Path,
        metavar="DIR",
        help="only rewrite DIR's results.md, results.json summaries and throughput.png from its trials",
    )
    args = parser.parse_args(argv)
    if args.rewrite_report:
        return args
    known = available_workloads()
    args.workloads = args.workloads.split(",") if args.workloads else known
    unknown = [w for w in args.workloads if w not in known]
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r}; available: {', '.join(known)}")
    args.contenders = args.contenders.split(",")
    bad = [c for c in args.contenders if c not in ALL]
    if bad:
        parser.error(f"unknown contender {bad[0]!r}; valid: {', '.join(ALL)}")
    if args.size in PRESETS:
        args.rows = None
    else:
        try:
            args.rows = [int(v.replace("_", "")) for v in args.size.split(",")]
        except ValueError:
            parser.error(f"--size {args.size!r}: not a preset ({', '.join(PRESETS)}) or a list of row counts")
    if args.phase_rounds is None:
        args.phase_rounds = 0 if args.size == "smoke" else 2
    if args.repeat < 0:
        parser.error("--repeat must be >= 0")
    return args


def plan_trials(args, sizes: dict[str, dict[str, list[int]]]) -> list[tuple[str, list[tuple[str, int]]]]:
    """(workload, [(contender, rows), ...]) per benchmark process, in the order they run.

    Contenders of one size run back to back, so that they see the same load on a shared machine.
    """
    order = [c for c in ALL if c in args.contenders]
    groups = []
    for workload in args.workloads:
        table, scaling = sizes[workload]["table"], sizes[workload]["scaling"]
        trials = [
            (c, rows)
            for rows in sorted(set(table) | set(scaling))
            for c in order
            if (rows in table or c in EXECUTORS) and applies(c, workload)
        ]
        if args.isolation == "contender":
            groups += [(workload, [t]) for t in trials]
        else:
            for engine in dict.fromkeys(ENGINE[c] for c in order):
                mine = [t for t in trials if ENGINE[t[0]] == engine]
                mine.sort(key=lambda t: (order.index(t[0]), t[1]))
                if mine:
                    groups.append((workload, mine))
    return groups


def run_process(workload: str, trials: list[tuple[str, int]], prepared, args, out: Path, index: int) -> dict:
    """Runs one benchmark process and returns its result (or an error for each of its trials)."""
    label = f"{index:03d}-{workload}-{trials[0][0]}-{trials[0][1]}"
    spec_path, result_path, log_path = (
        out / "specs" / f"{label}.json",
        out / "specs" / f"{label}.result.json",
        out / "logs" / f"{label}.log",
    )
    spec = {
        "workload": workload,
        "job": str(prepared.job_path),
        "repeat": args.repeat,
        "min_time": args.min_time,
        "scratch": str(out / ".scratch" / label),
        "trials": [{"contender": c, "rows": r, "input": str(prepared.input_dir(r))} for c, r in trials],
        "result": str(result_path),
        "spawned_at": time.time(),
    }
    spec_path.write_text(json.dumps(spec, indent=1))
    with open(log_path, "w") as log:
        child = run_child(
            [sys.executable, "-m", "benchmarks.trial", str(spec_path)], log, timeout=args.timeout
        )
    shutil.rmtree(out / ".scratch" / label, ignore_errors=True)
    if child.returncode == 0 and result_path.exists():
        return json.loads(result_path.read_text())
    reason = f"benchmark process exited with {child.returncode}: {last_line(log_path)} (log: {log_path})"
    return {
        "workload": workload,
        "trials": [{"contender": c, "rows": r, "runs": [], "error": reason} for c, r in trials],
    }


def run_phases(args, sizes: dict, out: Path) -> dict:
    """``benchmarks.phases`` in its own process (it reaps every process its runs leave): a 1-row
    job and tabular_torch's largest size, cold, against each engine's hand-written floor, then a
    1-row job on warm engines. Runs before the trials, so its fresh processes see the same load."""
    from benchmarks.phases import WORKLOAD

    largest = max(sizes.get(WORKLOAD, {"table": [1]})["table"])
    folder = out / "phases"
    argv = [
        sys.executable,
        "-m",
        "benchmarks.phases",
        "--rows",
        f"1,{largest}",
        "--rounds",
        str(args.phase_rounds),
        "--cache",
        str(args.cache),
        "--out",
        str(folder),
    ] + ([] if args.no_warm else ["--warm"])
    print(f"phases: {' '.join(argv[2:])}", flush=True)
    log_path = out / "logs" / "phases.log"
    with open(log_path, "w") as log:
        code = run_child(argv, log, timeout=args.timeout).returncode
    if code != 0 or not (folder / "phases.json").exists():
        return {"error": f"benchmarks.phases exited with {code}: {last_line(log_path)} (log: {log_path})"}
    data = json.loads((folder / "phases.json").read_text())
    return {**data["summary"], "meta": data["meta"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rewrite_report:
        data = json.loads((args.rewrite_report / "results.json").read_text())
        report.finish(args.rewrite_report, data["meta"], data["trials"])
        print((args.rewrite_report / "results.md").read_text())
        return 0
    started = dt.datetime.now()
    measured_on = machine_record()
    # A GPU machine's results go under results/gpu/, which git keeps (see .gitignore).
    out = args.out or RESULTS / ("gpu" if measured_on["machine"]["gpu"] else "") / started.strftime(
        "%Y%m%d-%H%M%S"
    )
    for folder in (out / "specs", out / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    if os.environ.get("RAY_ADDRESS"):
        print(
            f"warning: RAY_ADDRESS={os.environ['RAY_ADDRESS']} is ignored: the benchmark starts Ray locally",
            file=sys.stderr,
        )
    sizes = plan_sizes(None if args.rows else args.size, args.rows, args.workloads, not args.no_scaling)
    print(
        f"benchmark -> {out}\nworkloads: {', '.join(args.workloads)}; contenders: "
        f"{', '.join(args.contenders)}",
        flush=True,
    )
    prepared = {}
    for workload in args.workloads:
        all_sizes = sorted(set(sizes[workload]["table"]) | set(sizes[workload]["scaling"]))
        prepared[workload] = prepare(workload, all_sizes, args.files, args.cache, args.seed)
        print(f"{workload}: sizes {', '.join(f'{r:,}' for r in all_sizes)}", flush=True)

    phases = run_phases(args, sizes, out) if args.phase_rounds else None
    results = []
    groups = plan_trials(args, sizes)
    for index, (workload, trials) in enumerate(groups):
        result = run_process(workload, trials, prepared[workload], args, out, index)
        results.append(result)
        for record in result["trials"]:
            print(_progress(index, len(groups), report.summarize(workload, record)), flush=True)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((dt.datetime.now() - started).total_seconds(), 1),
        **measured_on,
        "load_average": [load_start, os.getloadavg()[0]],
        "config": {
            "size": args.size,
            "sizes": sizes,
            "workloads": args.workloads,
            "contenders": args.contenders,
            "repeat": args.repeat,
            "min_time": args.min_time,
            "isolation": args.isolation,
            "files": args.files,
            "seed": args.seed,
        },
        "builds": {w: p.build_metrics for w, p in prepared.items()},
    }
    if phases is not None:
        meta["phases"] = phases
    summaries = report.finish(out, meta, results)
    shutil.rmtree(out / ".scratch", ignore_errors=True)
    print((out / "results.md").read_text())
    failed = [s for s in summaries if s.get("error") or s.get("output_check") not in ("ok", None)]
    for s in failed:
        print(
            f"FAILED: {s['workload']} {s['rows']:,} {s['contender']}: "
            f"{s.get('error') or s.get('output_check')}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _progress(index: int, total: int, s: dict) -> str:
    head = f"[{index + 1}/{total}] {s['workload']} {s['rows']:,} rows {s['contender']}"
    if not s.get("job_rows_per_second"):
        return f"{head}: failed: {s.get('error')}"
    return (
        f"{head}: {s['job_rows_per_second']:,.0f} rows/s {s['measured_on']} ({s['seconds']['rounds']} runs), "
        f"startup {s['startup_seconds']:.1f} s, first run {s['first_run_seconds']:.1f} s, "
        f"CPU {s['cpu_seconds_per_million_rows']:,.1f} s per 1M rows, load {s['load_average'][1]:.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
