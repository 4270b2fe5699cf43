"""``make gpu-check``: the example jobs on Ray with the GPU, against the same jobs on the CPU.

    python -m benchmarks.gpu_check [--workloads a,b] [--rows N | --rows name=N,name=N]
                                   [--gpu-batch-size N] [--cpu-concurrency N] [--allow-cpu] [--out DIR]

For each workload (default: text_classification, generation and their transformers versions,
text_transformers and generation_transformers; built through the benchmark's
workload cache, so inputs, models and files match ``make bench``) it runs the example's job with
``python -m common.cli run JOB --backend ray`` in a fresh process twice: first with the GPU, while
``nvidia-smi`` samples utilisation and memory every 200 ms, then with ``CUDA_VISIBLE_DEVICES=""``
(the CPU baseline). Each output's ``_manifest.json`` must name the device it was meant to run on.
The two outputs are then compared by the project's parity engine under the job's ``[parity]``
tolerances: labels, text and integers exactly, float scores within tolerance.

Writes ``results.json``, ``results.md``, each workload's ``parity.json`` / ``parity.html`` and the
run logs to ``benchmarks/results/gpu/<timestamp>-gpu-check/`` (git keeps it). Without CUDA it
stops (exit 2) unless ``--allow-cpu`` rehearses everything on the CPU, into the git-ignored
``benchmarks/results/<timestamp>-gpu-check/``. Imports no pyspark and downloads nothing.

Exit status: 0 every run finished on its device and parity passed; 1 a run failed, ran on the
wrong device, or parity failed; 2 bad arguments or no CUDA device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path

from benchmarks.harness import RESULTS, child_env, last_line, machine_line, machine_record, run_child, table
from benchmarks.workloads import DEFAULT_CACHE, available_workloads, default_files, plan_sizes, prepare

DEFAULT_WORKLOADS = ("text_classification", "generation", "text_transformers", "generation_transformers")
# Four times `make bench`'s largest default sizes, so that on a GPU the model's work, not Ray's
# start (3-5 s), decides the rate. Other workloads default to their largest `make bench` size.
DEFAULT_ROWS = {
    "text_classification": 200_000,
    "generation": 20_000,
    "text_transformers": 200_000,
    "generation_transformers": 20_000,
}
SAMPLE_MS = 200
NVIDIA_SMI = [
    "nvidia-smi",
    "--query-gpu=index,utilization.gpu,memory.used",
    "--format=csv,noheader,nounits",
    "-lms",
    str(SAMPLE_MS),
]
# The CLI's summary line (common.run.result.RunResult.summary).
SUMMARY = re.compile(r"rows out (?P<rows>\d+).*?, (?P<seconds>[\d.]+) s \(startup (?P<startup>[\d.]+) s\), ")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS), help="comma-separated examples")
    parser.add_argument(
        "--rows",
        help="rows for every workload (N) or per workload (name=N,...); default: "
        + ", ".join(f"{w} {n:,}" for w, n in DEFAULT_ROWS.items()),
    )
    parser.add_argument(
        "--gpu-batch-size",
        type=int,
        default=0,
        help="[ray] gpu_batch_size for the GPU run (default 0: the bundle's batch_size)",
    )
    parser.add_argument(
        "--cpu-concurrency",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="[ray] concurrency for the CPU baseline (default: CPUs - 1 replicas, one thread "
        "each, so the baseline uses the machine as make bench's ceiling does; 0: the job's own)",
    )
    parser.add_argument(
        "--allow-cpu", action="store_true", help="run even without CUDA (the 'GPU' run then uses the CPU)"
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default: benchmarks/results/gpu/<timestamp>-gpu-check)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="the benchmark's workload cache")
    parser.add_argument(
        "--files", type=int, default=default_files(), help="Parquet files per input (default: 2 x CPUs)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds before one job process is killed"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    known = available_workloads()
    args.workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in args.workloads if w not in known]
    if unknown or not args.workloads:
        parser.error(f"unknown workload {unknown[0] if unknown else ''!r}; available: {', '.join(known)}")
    try:
        args.rows = parse_rows(args.rows, args.workloads)
    except ValueError as exc:
        parser.error(str(exc))
    if args.gpu_batch_size < 0 or args.cpu_concurrency < 0 or args.files < 1:
        parser.error("--gpu-batch-size and --cpu-concurrency must be >= 0, --files >= 1")
    return args


def parse_rows(text: str | None, workloads: list[str]) -> dict[str, int]:
    """``N`` (every workload) and ``name=N`` items, applied in order, over the defaults."""
    rows = {
        w: DEFAULT_ROWS.get(w) or max(plan_sizes("default", None, [w], False)[w]["table"]) for w in workloads
    }
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, named, value = item.strip().rpartition("=")
        try:
            count = int(value.replace("_", ""))
        except ValueError:
            raise ValueError(f"--rows {item!r}: not a row count (N or name=N)") from None
        if count < 1:
            raise ValueError(f"--rows {item!r}: rows must be >= 1")
        if named and name not in workloads:
            raise ValueError(f"--rows {item!r}: {name!r} is not one of --workloads ({', '.join(workloads)})")
        rows.update({name: count} if named else dict.fromkeys(workloads, count))
    return rows


def cuda_problem() -> str | None:
    """Why no CUDA device is visible to torch here, or None when one is."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no device "
        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
    )


# --- GPU sampling ---------------------------------------------------------------------------------


class GpuSampler:
    """``nvidia-smi`` sampling every 200 ms into a CSV file while the ``with`` block runs."""

    def __init__(self, csv_path: Path):
        self.csv_path, self.process, self.reason = csv_path, None, None

    def __enter__(self) -> GpuSampler:
        if shutil.which(NVIDIA_SMI[0]) is None:
            self.reason = "nvidia-smi not found on PATH"
            return self
        with open(self.csv_path, "w") as sink:
            self.process = subprocess.Popen(NVIDIA_SMI, stdout=sink, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def summary(self) -> dict:
        if self.reason:
            return summarize_gpu_samples([], [self.reason])
        samples, other = parse_nvidia_smi(self.csv_path.read_text())
        return summarize_gpu_samples(samples, other)


def parse_nvidia_smi(text: str) -> tuple[list[tuple[int, float, float]], list[str]]:
    """``index, utilization %, memory MiB`` lines -> samples; any other line (an error, ``[N/A]``) apart."""
    samples, other = [], []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        try:
            index, util, memory = int(fields[0]), float(fields[1]), float(fields[2])
        except (ValueError, IndexError):
            if line.strip():
                other.append(line.strip())
            continue
        samples.append((index, util, memory))
    return samples, other


def summarize_gpu_samples(samples: list[tuple[int, float, float]], other: list[str]) -> dict:
    """Utilisation (mean, p50, max, and mean while busy) and peak memory of the busiest GPU.

    The sampling starts before the job's process, so the mean includes its start (imports, Ray);
    ``utilization_busy_mean`` covers only the span from the first to the last sample above 0 %.
    With no samples every number is None and ``reason`` says why.
    """
    found = {
        "sampler": " ".join(NVIDIA_SMI),
        "interval_ms": SAMPLE_MS,
        "samples": len(samples),
        "gpu_index": None,
        "utilization_mean": None,
        "utilization_p50": None,
        "utilization_max": None,
        "utilization_busy_mean": None,
        "memory_before_mib": None,
        "memory_peak_mib": None,
        "reason": None,
    }
    if not samples:
        found["reason"] = "; ".join(dict.fromkeys(other))[:300] or "nvidia-smi printed no samples"
        return found
    by_gpu: dict[int, list[tuple[float, float]]] = {}
    for index, util, memory in samples:
        by_gpu.setdefault(index, []).append((util, memory))
    index = max(
        by_gpu, key=lambda i: (statistics.fmean(u for u, _ in by_gpu[i]), max(m for _, m in by_gpu[i]))
    )
    utils, memory = [u for u, _ in by_gpu[index]], [m for _, m in by_gpu[index]]
    busy = [i for i, u in enumerate(utils) if u > 0]
    found.update(
        gpu_index=index,
        gpus=len(by_gpu),
        utilization_mean=round(statistics.fmean(utils), 1),
        utilization_p50=statistics.median(utils),
        utilization_max=max(utils),
        utilization_busy_mean=round(statistics.fmean(utils[busy[0] : busy[-1] + 1]), 1) if busy else 0.0,
        memory_before_mib=memory[0],
        memory_peak_mib=max(memory),
    )
    return found


# --- one workload ---------------------------------------------------------------------------------


def write_job(source: Path, dest: Path, input_dir: Path, output_dir: Path, ray: dict) -> Path:
    """The example's job with absolute paths, its ``[ray]`` section updated by ``ray``, and no
    ``[spark]`` section (this run is Ray's alone, and the GPU machine has no pyspark)."""
    from common.spec.toml import write_toml

    raw = tomllib.loads(source.read_text())
    raw.pop("spark", None)
    raw["input"] = {"path": str(input_dir), "format": "parquet"}
    raw["output"] = {**raw["output"], "path": str(output_dir), "overwrite": True}
    raw["model"] = {**raw["model"], "bundle": str((source.parent / raw["model"]["bundle"]).resolve())}
    raw["ray"] = {**raw.get("ray", {}), **ray}
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_toml(dest, raw)
    return dest


def run_job_process(
    job: Path, output: Path, rows: int, log_path: Path, hide_gpus: bool, timeout: float
) -> dict:
    """Runs the job through the CLI in a fresh process; its wall time, summary line and manifest."""
    command = [sys.executable, "-m", "common.cli", "run", str(job), "--backend", "ray"]
    with open(log_path, "w") as log:  # each job starts its own local Ray, like `make bench`'s
        child = run_child(command, log, env=child_env(hide_gpus=hide_gpus), timeout=timeout)
    wall = child.seconds
    lines = log_path.read_text().strip().splitlines()
    run = {
        "command": " ".join(command[1:]),
        "cuda_visible_devices": "" if hide_gpus else os.environ.get("CUDA_VISIBLE_DEVICES"),
        "returncode": child.returncode,
        "wall_seconds": round(wall, 3),
        "rows_per_second": None,
        "log": str(log_path),
        "error": None,
        "device": None,
        "manifest": None,
        "engine": None,
    }
    manifest = output / "_manifest.json"
    if child.returncode != 0 or not manifest.exists():
        run["error"] = f"exited with {child.returncode}: {last_line(log_path)}"
        return run
    run["manifest"] = json.loads(manifest.read_text())
    run["device"] = run["manifest"]["device"]
    run["rows_per_second"] = round(rows / wall, 1)
    match = next((m for m in map(SUMMARY.search, lines) if m), None)
    if match:  # the runner's own clock: the job without the process start; the rate also without Ray's start
        seconds, startup = float(match["seconds"]), float(match["startup"])
        run["engine"] = {
            "job_seconds": seconds,
            "startup_seconds": startup,
            "rows_per_second_after_startup": round(int(match["rows"]) / (seconds - startup), 1)
            if seconds > startup
            else None,
        }
    else:
        print(
            f"warning: no summary line in {log_path}; the engine's own timings are not recorded",
            file=sys.stderr,
        )
    return run


def check_parity(
    job_path: Path, cpu_output: Path, gpu_output: Path, report_dir: Path, work_dir: Path
) -> dict:
    """The two outputs compared under the job's ``[parity]`` section; the verdict and the worst columns."""
    from common.parity.compare import compare_outputs
    from common.parity.report import write_reports
    from common.spec.job import load_job

    job = load_job(job_path)
    report = compare_outputs(
        {"cpu": cpu_output, "gpu": gpu_output}, list(job.key), job.parity, reference="cpu", work_dir=work_dir
    )
    paths = write_reports(report, report_dir)
    data = report.to_dict()
    pair = data["pairs"][0]
    keep = (
        "name",
        "kind",
        "verdict",
        "tolerance",
        "compared",
        "unequal",
        "null_mismatches",
        "max_abs_diff",
        "max_ulps",
        "type_differs",
    )
    return {
        "ok": data["ok"],
        "verdict": "ok" if data["ok"] else "FAILED",
        "problems": data["problems"],
        "findings": data["reference_findings"],
        "matched": pair["matched"],
        "cpu_only": pair["left_only"],
        "gpu_only": pair["right_only"],
        "columns": [{k: c[k] for k in keep} for c in pair["columns"]],
        "samples": pair["samples"][:5],
        "report": {k: str(p) for k, p in paths.items()},
    }


def record_problems(gpu_run: dict, cpu_run: dict, parity: dict | None, gpu_device: str) -> list[str]:
    """Every reason the workload's check failed, one line each (empty: it passed)."""
    problems = []
    for label, run, device in (("GPU run", gpu_run, gpu_device), ("CPU run", cpu_run, "cpu")):
        if run["error"]:
            problems.append(f"{label} {run['error']} (see {run['log']})")
        elif device_kinds(run["device"]) != {device}:
            problems.append(f"{label} ran on {run['device']}, not {device} (its _manifest.json)")
    if parity is None:
        problems.append("parity not checked: a run failed")
    else:
        problems += [f"parity: {p}" for p in parity["problems"]]
    return problems


def device_kinds(device: str | None) -> set[str]:
    """``"cuda"``, ``"cuda:0"``, ``"cpu,cuda:0"`` (one per worker) -> ``{"cuda"}``, ``{"cuda"}``,
    ``{"cpu", "cuda"}``."""
    return {part.strip().split(":")[0] for part in (device or "").split(",") if part.strip()}


def check_workload(name: str, rows: int, args, gpu_device: str, out: Path, scratch: Path) -> dict:
    prepared = prepare(name, [rows], args.files, args.cache, args.seed)
    folder = scratch / name
    gpu_ray = {"num_gpus": "auto", **({"gpu_batch_size": args.gpu_batch_size} if args.gpu_batch_size else {})}
    cpu_ray = {"num_gpus": "auto", **({"concurrency": args.cpu_concurrency} if args.cpu_concurrency else {})}
    jobs = {
        side: write_job(
            prepared.job_path, folder / f"{side}.toml", prepared.input_dir(rows), folder / side, ray
        )
        for side, ray in (("gpu", gpu_ray), ("cpu", cpu_ray))
    }
    print(f"{name}: {rows:,} rows, GPU run ...", flush=True)
    with GpuSampler(out / "logs" / f"{name}-nvidia-smi.csv") as sampler:
        gpu_run = run_job_process(
            jobs["gpu"], folder / "gpu", rows, out / "logs" / f"{name}-gpu.log", False, args.timeout
        )
    print(f"{name}: CPU baseline ...", flush=True)
    cpu_run = run_job_process(
        jobs["cpu"], folder / "cpu", rows, out / "logs" / f"{name}-cpu.log", True, args.timeout
    )
    parity = None
    if not gpu_run["error"] and not cpu_run["error"]:
        parity = check_parity(jobs["cpu"], folder / "cpu", folder / "gpu", out / name, folder / "parity-work")
        parity["report"] = {k: os.path.relpath(p, out) for k, p in parity["report"].items()}
    for run in (
        gpu_run,
        cpu_run,
    ):  # the folder travels (from the GPU machine, into git): paths relative to it
        run["log"] = os.path.relpath(run["log"], out)
    return {
        "workload": name,
        "rows": rows,
        "files": args.files,
        "ray_settings": {"gpu": gpu_ray, "cpu": cpu_ray},
        "gpu_run": gpu_run,
        "cpu_run": cpu_run,
        "gpu_utilization": sampler.summary(),
        "gpu_over_cpu": _ratio(_rate(gpu_run), _rate(cpu_run)),
        "gpu_over_cpu_after_startup": _ratio(_rate(gpu_run, True), _rate(cpu_run, True)),
        "parity": parity,
        "problems": record_problems(gpu_run, cpu_run, parity, gpu_device),
    }


def _rate(run: dict, after_startup: bool = False) -> float | None:
    if after_startup:
        return (run["engine"] or {}).get("rows_per_second_after_startup")
    return run["rows_per_second"]


def _ratio(gpu: float | None, cpu: float | None) -> float | None:
    return round(gpu / cpu, 2) if gpu and cpu else None


# --- results --------------------------------------------------------------------------------------


def exit_status(records: list[dict]) -> int:
    return 1 if any(r["problems"] for r in records) else 0


def write_results(out: Path, meta: dict, records: list[dict]) -> None:
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "workloads": records}, indent=1, default=str) + "\n"
    )
    (out / "results.md").write_text(render_markdown(meta, records))


def _show(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def render_markdown(meta: dict, records: list[dict]) -> str:
    """``results.md``: the machine, one row per workload, a legend, then every problem."""
    lines = [f"# GPU check {meta['started']}", "", machine_line(meta), f"Command: `{meta['command']}`", ""]
    rows = []
    for r in records:
        if "gpu_run" not in r:
            rows.append([r["workload"], f"{r['rows']:,}", "–", "–", "–", "–", "–", "not run"])
            continue
        gpu, util = r["gpu_run"], r["gpu_utilization"]
        rows.append(
            [
                r["workload"],
                f"{r['rows']:,}",
                f"{_show(gpu['rows_per_second'])} ({gpu['device'] or 'failed'})",
                _show(r["cpu_run"]["rows_per_second"]),
                _show(r["gpu_over_cpu"], "{:.2f}"),
                f"{_show(util['utilization_mean'], '{:.0f}')} / {_show(util['utilization_max'], '{:.0f}')}",
                _show(util["memory_peak_mib"]),
                r["parity"]["verdict"] if r["parity"] else "not checked",
            ]
        )
    columns = [
        "workload",
        "rows",
        "GPU rows/s",
        "CPU rows/s",
        "GPU/CPU",
        "GPU util mean / max %",
        "peak GPU MiB",
        "parity",
    ]
    lines += table(columns, rows, numeric=columns[1:7])
    lines += [
        "",
        "Rows/s: rows / wall seconds of the whole `python -m common.cli run` process (imports and Ray's "
        "start included); `results.json` also has the runner's own rate after the engine's start. GPU "
        f"utilisation: `nvidia-smi` every {SAMPLE_MS} ms from before the GPU run's process starts to after "
        "it ends.",
    ]
    for r in records:
        util = r.get("gpu_utilization") or {}
        if util.get("reason"):
            lines.append(f"- {r['workload']}: no GPU utilisation: {util['reason']}")
        lines += [f"- {r['workload']}: {p}" for p in r["problems"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = cuda_problem()
    if problem and not args.allow_cpu:
        print(f"no CUDA device visible: {problem}; pass --allow-cpu to rehearse on the CPU", file=sys.stderr)
        return 2
    started = dt.datetime.now()
    gpu_device = "cpu" if problem else "cuda"
    # Only a real GPU run lands under results/gpu/, which git keeps (see .gitignore).
    out = args.out or RESULTS / ("gpu" if gpu_device == "cuda" else "") / f"{started:%Y%m%d-%H%M%S}-gpu-check"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    if os.environ.get("RAY_ADDRESS"):
        print(
            f"warning: RAY_ADDRESS={os.environ['RAY_ADDRESS']} is ignored: each job starts Ray locally",
            file=sys.stderr,
        )
    if problem:
        print(f"warning: no CUDA device visible ({problem}): the 'GPU' runs use the CPU", file=sys.stderr)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)]),
        **machine_record(),
        "gpu_run_device": gpu_device,
        "no_cuda_reason": problem,
        "config": {
            "workloads": args.workloads,
            "rows": args.rows,
            "files": args.files,
            "seed": args.seed,
            "gpu_batch_size": args.gpu_batch_size,
            "cpu_concurrency": args.cpu_concurrency,
        },
    }
    print(f"gpu check -> {out}", flush=True)
    records = []
    # The jobs' outputs stay outside ``out``: a killed check must not leave them in a git-kept folder.
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        for name in args.workloads:
            try:
                record = check_workload(name, args.rows[name], args, gpu_device, out, Path(scratch))
            except Exception as exc:  # recorded; the other workloads still run
                traceback.print_exc()
                record = {
                    "workload": name,
                    "rows": args.rows[name],
                    "problems": [f"{type(exc).__name__}: {exc}"[:500]],
                }
            records.append(record)
            meta["seconds"] = round((dt.datetime.now() - started).total_seconds(), 1)
            write_results(out, meta, records)  # after every workload: a killed run keeps what it finished
    print((out / "results.md").read_text())
    for record in records:
        for line in record["problems"]:
            print(f"FAILED: {record['workload']}: {line}", file=sys.stderr)
    return exit_status(records)


if __name__ == "__main__":
    sys.exit(main())
