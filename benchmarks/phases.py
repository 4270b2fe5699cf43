"""Where a job's time goes, phase by phase, against each engine's hand-written floor.

    python -m benchmarks.phases [--rows 1,1000000] [--engines spark,ray] [--rounds 3] [--out DIR]

Every measurement is a fresh process, run the way a scheduler runs a job: ``batch-predict run``
on each engine (traced by ``benchmarks.tracecli``), the smallest hand-written pipeline that does
the same job on that engine (``benchmarks.floors``) and the reference executor. They run in
interleaved rounds, so that they see the same load on a shared machine, and each is measured from
outside (``benchmarks.fresh``): wall seconds to the command's exit and to the exit of the last
process it started, CPU seconds of the whole process tree, and any process still alive after it.
Writes ``phases.json`` and ``phases.md`` (two tables: start to exit against the floor, and the
phase trace of our CLI, medians over the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import targets
from benchmarks.fresh import become_subreaper, run_fresh
from benchmarks.harness import child_env, machine_record, table
from benchmarks.workloads import DEFAULT_CACHE, default_files, prepare

WORKLOAD = "tabular_torch"
LINGER_S = 30.0


def job_file(prepared, rows: int, folder: Path, name: str = "", settings: dict | None = None) -> Path:
    """The workload's job file pointed at one input size, an output in ``folder`` and the cached
    bundle, with ``settings`` ({section: {key: value}}) set in its engine sections."""
    settings = {section: dict(values) for section, values in (settings or {}).items()}
    lines, section = [], ""

    def flush():  # the settings of the section that ends here, then forget them
        lines.extend(  # a value of None removes the key
            f"{key} = {json.dumps(value)}"
            for key, value in settings.pop(section.strip("[]"), {}).items()
            if value is not None
        )

    for line in prepared.job_path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            flush()
            section = stripped
        key = stripped.split("=")[0].strip()
        if section == "[input]" and key == "path":
            line = f'path = "{prepared.input_dir(rows)}"'
        elif section == "[output]" and key == "path":
            line = f'path = "{folder / "out"}"'
        elif section == "[model]" and key == "bundle":
            line = f'bundle = "{prepared.folder / "model"}"'
        elif key in settings.get(section.strip("[]"), {}):
            continue  # replaced by the setting
        lines.append(line)
    flush()
    for name_, values in settings.items():
        lines += [f"[{name_}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    path = folder / f"job-{rows}{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def commands(
    prepared, rows: int, engines: list[str], folder: Path, trace: Path, warm: dict[str, dict] | None = None
) -> dict[str, list[str]]:
    """Contender name -> argv, for one input size; ``warm``: engine -> the job settings that point
    it at a warm engine (one more contender each)."""
    job = job_file(prepared, rows, folder)
    out = folder / "out"
    found = {}
    for engine in engines:
        if warm and engine in warm:
            warm_job = job_file(prepared, rows, folder, f"-warm-{engine}", {engine: warm[engine]})
            found[f"warm {engine}"] = [
                sys.executable,
                "-m",
                "benchmarks.tracecli",
                str(trace),
                "run",
                str(warm_job),
                "--backend",
                engine,
                "--overwrite",
            ]
        found[f"cli {engine}"] = [
            sys.executable,
            "-m",
            "benchmarks.tracecli",
            str(trace),
            "run",
            str(job),
            "--backend",
            engine,
            "--overwrite",
        ]
        found[f"floor {engine}"] = [
            sys.executable,
            "-m",
            "benchmarks.floors",
            engine,
            "--input",
            str(prepared.input_dir(rows)),
            "--output",
            str(out),
            "--bundle",
            str(prepared.folder / "model"),
        ]
    found["cli reference"] = [
        sys.executable,
        "-m",
        "benchmarks.tracecli",
        str(trace),
        "run",
        str(job),
        "--backend",
        "reference",
        "--overwrite",
    ]
    return found


def _run_one(name: str, argv: list[str], rows: int, round_index: int, folder: Path, env: dict, log) -> dict:
    shutil.rmtree(folder / "out", ignore_errors=True)
    trace = folder / "trace.jsonl"
    trace.unlink(missing_ok=True)
    run = run_fresh(argv, env={**env, "PHASES_SPAWNED_AT": repr(time.time())}, linger=LINGER_S)
    record = {
        "contender": name,
        "rows": rows,
        "round": round_index,
        **run.to_dict(),
        "stdout_lines": run.stdout.splitlines(),
        "stderr_lines": run.stderr.splitlines()[-20:],
    }
    if trace.exists():
        record["trace"] = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    failed = f", FAILED {run.returncode}: {run.stderr.strip().splitlines()[-1:]}" if run.returncode else ""
    lingering = f", LINGERING {run.lingering}" if run.lingering else ""
    log(
        f"round {round_index + 1} {rows:,} rows {name}: exit {run.exit_seconds:.1f} s, all gone "
        f"{run.all_gone_seconds:.1f} s, CPU {run.cpu_seconds:.1f} s, load {run.load_average:.1f}"
        f"{failed}{lingering}"
    )
    return record


def measure(
    prepared, sizes: list[int], engines: list[str], rounds: int, scratch: Path, log=print
) -> list[dict]:
    """Every contender at every size in fresh processes, ``rounds`` times, interleaved."""
    become_subreaper()
    records = []
    for round_index in range(rounds):
        for rows in sizes:
            folder = scratch / f"{rows}"
            folder.mkdir(parents=True, exist_ok=True)
            for name, argv in commands(prepared, rows, engines, folder, folder / "trace.jsonl").items():
                records.append(_run_one(name, argv, rows, round_index, folder, child_env(), log))
    return records


def measure_warm(prepared, engines: list[str], rounds: int, scratch: Path, log=print) -> list[dict]:
    """A 1-row job against a warm engine on this machine (a Ray head, a Spark Connect server),
    after one untimed job that warms it; ``rounds`` timed runs each."""
    from benchmarks.warm import WarmRay, WarmSpark

    become_subreaper()
    records = []
    folder = scratch / "warm"
    folder.mkdir(parents=True, exist_ok=True)
    for engine in engines:
        server = WarmRay() if engine == "ray" else WarmSpark()
        with server:
            settings = {"address": "auto"} if engine == "ray" else {"remote": server.url, "master": None}
            env = child_env(**getattr(server, "env", {}))
            argv = commands(prepared, 1, [engine], folder, folder / "trace.jsonl", {engine: settings})[
                f"warm {engine}"
            ]
            for round_index in range(rounds + 1):
                record = _run_one(f"warm {engine}", argv, 1, round_index - 1, folder, env, log)
                if round_index:  # the first run warms the engine (its workers, their imports)
                    records.append(record)
    return records


def phase_table(record: dict) -> list[tuple[str, float, float]]:
    """(phase, wall s, tree CPU s) from one traced run: the gaps between marks, then the exit."""
    trace = record.get("trace") or []
    rows, previous = [], {"event": "spawn", "wall": 0.0, "tree_cpu": 0.0}
    for mark in trace:
        name = mark["event"]
        phase = (
            name[len("end ") :]
            if name.startswith("end ")
            else f"before {name[len('start ') :]}"
            if name.startswith("start ")
            else name
        )
        rows.append((phase, mark["wall"] - previous["wall"], mark["tree_cpu"] - previous["tree_cpu"]))
        previous = mark
    if trace:
        rows.append(
            (
                "exit (after main returned)",
                record["exit_seconds"] - previous["wall"],
                record["cpu_seconds"] - previous["tree_cpu"],
            )
        )
    return rows


def summarize(records: list[dict]) -> dict:
    """Medians per (rows, contender): start to exit, all gone, CPU; ratios to the engine's floor; phases."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["rows"], r["contender"]), []).append(r)
    table = []
    for (rows, name), runs in sorted(groups.items()):
        ok = [r for r in runs if r["returncode"] == 0]
        entry = {"rows": rows, "contender": name, "runs": len(runs), "failed": len(runs) - len(ok)}
        if ok:
            entry.update(
                {
                    key: statistics.median(r[key] for r in ok)
                    for key in ("exit_seconds", "all_gone_seconds", "cpu_seconds")
                }
            )
            entry["lingering"] = sorted({p for r in runs for p in r["lingering"]})
            entry["load_average"] = [
                min(r["load_average"] for r in runs),
                max(r["load_average"] for r in runs),
            ]
        table.append(entry)
    by_key = {(e["rows"], e["contender"]): e for e in table}
    for e in table:
        engine = e["contender"].split()[-1]
        floor = by_key.get((e["rows"], f"floor {engine}"))
        if (
            e["contender"].startswith("cli ")
            and floor
            and floor.get("exit_seconds")
            and e.get("exit_seconds")
        ):
            e["exit_vs_floor"] = e["exit_seconds"] / floor["exit_seconds"]
            e["cpu_vs_floor"] = e["cpu_seconds"] / floor["cpu_seconds"]
    phases: dict[tuple[int, str], dict[str, list[tuple[float, float]]]] = {}
    for r in records:
        if r["returncode"] == 0 and r.get("trace"):
            slot = phases.setdefault((r["rows"], r["contender"]), {})
            for phase, wall, cpu in phase_table(r):
                slot.setdefault(phase, []).append((wall, cpu))
    phase_rows = [
        {
            "rows": rows,
            "contender": name,
            "phase": phase,
            "wall_seconds": statistics.median(w for w, _ in values),
            "cpu_seconds": statistics.median(c for _, c in values),
        }
        for (rows, name), slot in sorted(phases.items())
        for phase, values in slot.items()
    ]
    return {"start_to_exit": table, "phases": phase_rows}


def markdown(summary: dict, meta: dict) -> str:
    """Two tables: start to exit against the floor, and the phase trace of our CLI."""
    lines = [
        f"## Start to exit, fresh processes ({meta['workload']}, {meta['rounds']} interleaved rounds, "
        "medians)",
        "",
        f"Load average {meta['load_average'][0]:.1f} at the start, {meta['load_average'][1]:.1f} at the end. "
        "Floor: the smallest hand-written pipeline on that engine with its default settings "
        "(`benchmarks/floors.py`). All gone: the last process the command started has exited.",
        "",
    ]
    rows = []
    for e in summary["start_to_exit"]:
        head = [f"{e['rows']:,}", e["contender"]]
        if "exit_seconds" not in e:
            rows.append([*head, f"failed ({e['failed']}/{e['runs']})", "", "", "", "", ""])
            continue
        rows.append(
            [
                *head,
                f"{e['exit_seconds']:.1f}",
                f"{e['all_gone_seconds']:.1f}",
                f"{e['cpu_seconds']:.1f}",
                f"{e['exit_vs_floor']:.2f}" if "exit_vs_floor" in e else "",
                f"{e['cpu_vs_floor']:.2f}" if "cpu_vs_floor" in e else "",
                f"{len(e['lingering'])} processes" if e["lingering"] else "none",
            ]
        )
    columns = [
        "rows",
        "contender",
        "exit s",
        "all gone s",
        "CPU s",
        "exit x floor",
        "CPU x floor",
        "left running",
    ]
    lines += table(columns, rows, numeric=[c for c in columns if c not in ("contender", "left running")])
    lines += ["", "## Phase trace of `batch-predict run` (medians; CPU of the whole process tree)", ""]
    phase_rows = [
        [
            f"{p['rows']:,}",
            p["contender"].split()[-1],
            p["phase"],
            f"{p['wall_seconds']:.2f}",
            f"{p['cpu_seconds']:.2f}",
        ]
        for p in summary["phases"]
    ]
    lines += table(
        ["rows", "backend", "phase", "wall s", "CPU s"], phase_rows, numeric=["rows", "wall s", "CPU s"]
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="1,1000000", help="input sizes, comma-separated")
    parser.add_argument("--engines", default="spark,ray")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", default=WORKLOAD)
    parser.add_argument(
        "--out", type=Path, help="folder for phases.json and phases.md (default: a new temp folder)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--warm", action="store_true", help="also a 1-row job against warm local engines")
    parser.add_argument("--cold-runs", type=Path, help="take the cold runs from this cold-runs.json instead")
    args = parser.parse_args(argv)
    sizes = [int(v.replace("_", "")) for v in args.rows.split(",") if v]
    engines = [e for e in args.engines.split(",") if e]
    out = args.out or Path(tempfile.mkdtemp(prefix="phases-"))
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(args.workload, sizes, default_files(), args.cache.resolve())
    load_start = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="phases-scratch-"))
    try:
        if args.cold_runs:
            records = json.loads(args.cold_runs.read_text())
        else:
            records = measure(prepared, sizes, engines, args.rounds, scratch)
        (out / "cold-runs.json").write_text(json.dumps(records, indent=1))  # kept if the warm part fails
        if args.warm:
            records += measure_warm(prepared, engines, args.rounds, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta = {
        **machine_record(),
        "workload": args.workload,
        "rounds": args.rounds,
        "sizes": sizes,
        "engines": engines,
        "load_average": [load_start, os.getloadavg()[0]],
    }
    summary = summarize(records)
    summary["targets"] = targets.phases(summary)
    (out / "phases.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": records}, indent=1)
    )
    (out / "phases.md").write_text(markdown(summary, meta))
    print((out / "phases.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
