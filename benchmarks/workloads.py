"""The workloads (the examples), their sizes, and the benchmark's copy of their data and models.

A workload is an example folder with ``build.py`` and ``job.toml`` (``examples.build.example_names``),
so examples added later are picked up by name. Each is built once, at the largest size a run asks
for, into a cache; smaller inputs are the first rows of that one, so every size is scored by the
same model. Every input is rewritten as ``2 x CPUs`` Parquet files: all contenders read the same
files, and each can use every core (Spark one task per file, Ray one read task per file, the
ceiling one process per file).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DEFAULT_CACHE = Path(__file__).resolve().parent / "results" / ".cache"

# Rows per workload and preset: "table" sizes are measured for every contender, "scaling" sizes
# for the two executors only (plus the table sizes), to draw throughput and memory against size.
# Heavy models get fewer rows so that each size costs about as much time as the tabular ones.
PRESETS: dict[str, dict[str, dict[str, list[int]]]] = {
    "smoke": {
        "table": {
            "tabular_sklearn": [2_000],
            "tabular_torch": [2_000],
            "text_classification": [512],
            "generation": [128],
            "images": [1_024],
            "tabular_xgboost": [2_000],
            "tabular_lightgbm": [2_000],
            "tabular_onnx": [2_000],
            "text_transformers": [512],
            "generation_transformers": [128],
            "heavy_mlp": [512],
            "spark_pipeline": [2_000],
        },
        "scaling": {},
    },
    # What a shared 2-CPU machine runs in about 15 minutes with --isolation engine: the 1M-row
    # tabular_torch target, the other workloads at a tenth of their default sizes.
    "small": {
        "table": {
            "tabular_sklearn": [20_000, 200_000],
            "tabular_torch": [100_000, 1_000_000],
            "text_classification": [2_000, 10_000],
            "generation": [200, 1_000],
            "images": [5_000, 50_000],
            "tabular_xgboost": [20_000, 200_000],
            "tabular_lightgbm": [20_000, 200_000],
            "tabular_onnx": [100_000, 1_000_000],
            "text_transformers": [2_000, 10_000],
            "generation_transformers": [200, 1_000],
            "heavy_mlp": [5_000, 20_000],
            "spark_pipeline": [100_000, 1_000_000],
        },
        "scaling": {"tabular_torch": [10_000, 100_000, 1_000_000]},
    },
    "default": {
        "table": {
            "tabular_sklearn": [100_000, 1_000_000],
            "tabular_torch": [100_000, 1_000_000],
            "text_classification": [10_000, 50_000],
            "generation": [1_000, 5_000],
            "images": [20_000, 200_000],
            "tabular_xgboost": [100_000, 1_000_000],
            "tabular_lightgbm": [100_000, 1_000_000],
            "tabular_onnx": [100_000, 1_000_000],
            "text_transformers": [10_000, 50_000],
            "generation_transformers": [1_000, 5_000],
            "heavy_mlp": [20_000, 100_000],
            "spark_pipeline": [100_000, 1_000_000],
        },
        "scaling": {
            "tabular_torch": [10_000, 100_000, 1_000_000, 5_000_000],
            "tabular_sklearn": [10_000, 100_000, 1_000_000, 5_000_000],
        },
    },
}
UNKNOWN_WORKLOAD_ROWS = {"smoke": 500, "small": 2_000, "default": 10_000}  # an example added later
# Workloads whose model is torch (the per-batch-reload target applies to them).
TORCH_WORKLOADS = (
    "tabular_torch",
    "text_classification",
    "generation",
    "images",
    "text_transformers",
    "generation_transformers",
    "heavy_mlp",
)


# Benchmark-only workloads: a module with ``build(size, seed, out_dir)`` that also writes the
# job file, and the examples whose code it builds on (for the cache's source hash).
BENCH_WORKLOADS = {"heavy_mlp": ("benchmarks.heavy_mlp", ["tabular_torch"])}


def available_workloads() -> list[str]:
    """Every example folder with a ``build.py`` and a ``job.toml``, by name, and the benchmark's own."""
    from examples.build import example_names

    return [*example_names(), *sorted(BENCH_WORKLOADS)]


def build_module(name: str) -> str:
    """The module whose ``build(size, seed, out_dir)`` builds the workload."""
    return BENCH_WORKLOADS[name][0] if name in BENCH_WORKLOADS else f"examples.{name}.build"


def legacy_pipeline(name: str) -> str | None:
    """The folder of the Spark ML pipeline the workload's build saves (its ``LEGACY_PIPELINE``), or
    None: a benchmark-only workload is a module of its own, not an example's ``build``."""
    return getattr(importlib.import_module(build_module(name)), "LEGACY_PIPELINE", None)


def plan_sizes(
    preset: str | None, rows: list[int] | None, workloads: list[str], scaling: bool
) -> dict[str, dict[str, list[int]]]:
    """workload -> {"table": [...], "scaling": [...]} for a preset, or explicit ``rows`` for all."""
    if rows:
        return {w: {"table": sorted(rows), "scaling": sorted(rows) if scaling else []} for w in workloads}
    spec = PRESETS[preset or "default"]
    plan = {}
    for name in workloads:
        table = spec["table"].get(name, [UNKNOWN_WORKLOAD_ROWS[preset or "default"]])
        extra = spec["scaling"].get(name, []) if scaling else []
        plan[name] = {"table": sorted(table), "scaling": sorted(set(extra) | set(table)) if extra else []}
    return plan


@dataclass(frozen=True)
class PreparedWorkload:
    """A workload's cached folder: ``job.toml``, ``model/``, and one input folder per size."""

    name: str
    folder: Path
    build_metrics: dict

    @property
    def job_path(self) -> Path:
        return self.folder / "job.toml"

    def input_dir(self, rows: int) -> Path:
        return self.folder / "inputs" / str(rows)


def source_hash(name: str, seed: int) -> str:
    """Changes when the example's code, job file or the shared build helpers change."""
    digest = hashlib.sha256(str(seed).encode())
    module, examples = BENCH_WORKLOADS.get(name, (None, [name]))
    files = [Path(importlib.util.find_spec(module).origin)] if module else []
    for example in examples:
        files += sorted((EXAMPLES / example).glob("*.py")) + [EXAMPLES / example / "job.toml"]
    files += [p for p in (EXAMPLES / "_torch_common.py",) if p.exists()]
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def prepare(
    name: str, sizes: list[int], files: int, cache: Path = DEFAULT_CACHE, seed: int = 0, log=print
) -> PreparedWorkload:
    """Builds (or reuses) the workload at ``max(sizes)`` rows and writes an input folder per size."""
    folder = cache / name
    stamp_path = folder / "build.json"
    wanted = {"hash": source_hash(name, seed), "seed": seed}
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    largest = max(sizes)
    if {k: stamp.get(k) for k in wanted} != wanted or stamp.get("rows", 0) < largest:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        started = time.perf_counter()
        metrics = importlib.import_module(build_module(name)).build(largest, seed, folder)
        if name not in BENCH_WORKLOADS:  # a benchmark-only build writes the job file too
            shutil.copy(EXAMPLES / name / "job.toml", folder / "job.toml")
        stamp = {
            **wanted,
            "rows": largest,
            "metrics": metrics,
            "seconds": round(time.perf_counter() - started, 2),
        }
        stamp_path.write_text(json.dumps(stamp, indent=1, default=str))
        log(f"built {name} at {largest:,} rows in {stamp['seconds']} s")
    source = _source_file(folder)
    prepared = PreparedWorkload(name, folder, stamp.get("metrics", {}))
    for rows in sizes:
        split_input(source, prepared.input_dir(rows), rows, files)
    return prepared


def _source_file(folder: Path) -> Path:
    found = sorted((folder / "data").glob("*.parquet"))
    if len(found) != 1:
        raise RuntimeError(f"{folder}/data: expected one Parquet file from build(), found {len(found)}")
    return found[0]


def split_input(source: Path, dest: Path, rows: int, files: int) -> None:
    """Writes the first ``rows`` rows of ``source`` into ``files`` equal Parquet files in ``dest``."""
    marker = dest.with_name(dest.name + ".json")
    wanted = {"rows": rows, "files": files, "source_mtime": source.stat().st_mtime}
    if marker.exists() and dest.is_dir() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    reader = pq.ParquetFile(source)
    if reader.metadata.num_rows < rows:
        raise RuntimeError(f"{source} has {reader.metadata.num_rows} rows, fewer than {rows}")
    per_file = math.ceil(rows / files)
    batches = reader.iter_batches(batch_size=min(per_file, 65_536))
    pending, written = None, 0
    for index in range(files):
        target = min(per_file, rows - written)
        if target <= 0:
            break
        with pq.ParquetWriter(dest / f"part-{index:05d}.parquet", reader.schema_arrow) as writer:
            left = target
            while left:
                if pending is None:
                    pending = next(batches)
                take = pending.slice(0, left)
                writer.write_batch(take)
                left -= take.num_rows
                pending = pending.slice(take.num_rows) if take.num_rows < pending.num_rows else None
        written += target
    marker.write_text(json.dumps(wanted))


def default_files() -> int:
    """Two input files per CPU, so that no contender is limited by the input's layout."""
    return max(2, 2 * (os.cpu_count() or 1))
