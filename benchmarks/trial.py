"""One benchmark process: ``python -m benchmarks.trial SPEC.json`` (started by ``benchmarks.run``).

The spec names a workload and a list of trials (contender, rows). This process is the driver:
it starts each contender's engine once (timed: that is the startup), then for each trial runs
the job once cold and ``repeat`` times warm, and measures every run: wall seconds, engine
seconds, CPU seconds of the whole process tree, the driver's peak RSS and the workers' peak
memory. Outputs are checked (row count, key sum, output sums) after the clock stops, then
deleted. The results go to the JSON file the spec names.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks import procfs
from benchmarks.contenders import ENGINE, make
from common.run.backends import get_backend
from common.run.output import output_files
from common.spec.bundle import load_bundle
from common.spec.job import load_job

MAX_WARM_RUNS = 10


def output_digest(folder: Path, key: str, outputs: list[str]) -> dict:
    """Rows, the key's sum and each output's sum (strings: total length) and null count."""
    files = output_files(folder)
    table = pa.concat_tables(pq.read_table(f, columns=[key, *outputs]) for f in files) if files else None
    digest = {"rows": 0 if table is None else table.num_rows}
    if table is None:
        return digest
    for name in [key, *outputs]:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.utf8_length(column)
        elif pa.types.is_floating(column.type):
            column = pc.if_else(pc.is_nan(column), None, column)
        if (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)
        ):
            total = pc.sum(pc.cast(column, pa.float64())).as_py()
            digest[name] = {"sum": total, "nulls": column.null_count}
    return digest


def measure(sampler: procfs.TreeSampler, call) -> tuple[dict, object]:
    """Runs ``call()`` and returns its resource use: CPU seconds, driver and workers peaks, load."""
    procfs.reset_peak()
    sampler.mark()
    cpu_before = sampler.cpu_by_kind()
    load_before = os.getloadavg()[0]
    value = call()
    workers = sampler.mark()
    cpu = {kind: seconds - cpu_before.get(kind, 0.0) for kind, seconds in sampler.cpu_by_kind().items()}
    usage = {
        "cpu_seconds": round(sum(cpu.values()), 3),
        "cpu_seconds_by_kind": {kind: round(seconds, 3) for kind, seconds in sorted(cpu.items())},
        "driver_peak_mib": round((procfs.status_kib("self", "VmHWM") or 0) / procfs.KIB_PER_MIB, 1),
        "workers_peak_mib": round(workers.total_kib / procfs.KIB_PER_MIB, 1),
        "workers_peak_by_kind_mib": {
            k: round(v / procfs.KIB_PER_MIB, 1) for k, v in sorted(workers.by_kind_kib.items())
        },
        "workers_processes": workers.processes,
        "memory_samples": workers.samples,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    return usage, value


def measure_run(
    sampler, contender, item: dict, scratch: Path, key: str, outputs: list[str], kind: str
) -> dict:
    """One run of ``contender`` on the trial's input: timings, resources, then the output's digest."""
    out = scratch / f"{item['contender']}-{item['rows']}-{time.monotonic_ns()}"
    usage, timing = measure(sampler, lambda: contender.run(Path(item["input"]), out))
    run = {
        "kind": kind,
        "seconds": round(timing.seconds, 3),
        "engine_seconds": round(timing.engine_seconds, 3),
        **usage,
    }
    run["digest"] = output_digest(out, key, outputs)  # after the clock stopped
    shutil.rmtree(out, ignore_errors=True)
    print(
        f"{item['contender']} {item['rows']:,} rows {kind}: {timing.seconds:.2f} s (engine "
        f"{timing.engine_seconds:.2f} s, "
        f"cpu {usage['cpu_seconds']:.1f} s)",
        flush=True,
    )
    return run


def wants_another_run(warm: list[dict], spec: dict) -> bool:
    """``repeat`` warm runs, then more (up to MAX_WARM_RUNS) until they add up to ``min_time`` seconds."""
    if len(warm) < spec["repeat"]:
        return True
    enough_time = sum(r["seconds"] for r in warm) >= spec.get("min_time", 0.0)
    return spec["repeat"] > 0 and not enough_time and len(warm) < MAX_WARM_RUNS


def run_trials(spec: dict) -> dict:
    job = load_job(spec["job"])
    bundle = load_bundle(job.bundle_path)
    scratch = Path(spec["scratch"])
    key, outputs = job.key[0], list(bundle.outputs)
    contenders, startup, trials = {}, {}, []
    ready_after = None
    last_of_engine = {ENGINE[item["contender"]]: i for i, item in enumerate(spec["trials"])}
    with procfs.TreeSampler(interval=spec.get("sample_interval", 0.5)) as sampler:
        for position, item in enumerate(spec["trials"]):
            name, rows = item["contender"], item["rows"]
            record = {"contender": name, "rows": rows, "runs": []}
            trials.append(record)
            try:
                if name not in contenders:
                    contender = make(name, job, bundle)
                    seconds = contender.start()
                    contenders[name] = contender
                    startup.setdefault(ENGINE[name], round(seconds, 3))
                    if ready_after is None:
                        ready_after = time.time() - spec["spawned_at"]
                record["startup_seconds"] = startup[ENGINE[name]]
                record["device"] = contenders[name].device()
                first_in_process = len(trials) == 1
                cold = measure_run(sampler, contenders[name], item, scratch, key, outputs, "cold")
                cold["end_to_end_seconds"] = round(
                    (time.time() - spec["spawned_at"]) if first_in_process else ready_after + cold["seconds"],
                    3,
                )
                cold["end_to_end_exact"] = first_in_process
                record["runs"].append(cold)
                while wants_another_run(record["runs"][1:], spec):
                    record["runs"].append(
                        measure_run(sampler, contenders[name], item, scratch, key, outputs, "warm")
                    )
            except Exception as exc:  # recorded and reported; the other trials still run
                traceback.print_exc()
                record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[
                    :500
                ]
            engine = ENGINE[name]
            if last_of_engine[engine] == position:  # so that it holds no memory during the next engine's runs
                for other in [n for n in contenders if ENGINE[n] == engine]:
                    contenders.pop(other).stop()
                stop_engine(engine)
    return {
        "workload": spec["workload"],
        "startup_seconds": startup,
        "trials": trials,
        "process_ready_seconds": ready_after,
        "pid": os.getpid(),
    }


def stop_engine(engine: str) -> None:
    """Stops the Spark session or Ray instance this process started (the ceiling's pool stops with it)."""
    if engine in ("spark", "ray"):
        get_backend(engine).stop()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    result = run_trials(spec)
    Path(spec["result"]).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
