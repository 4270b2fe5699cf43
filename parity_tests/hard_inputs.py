"""The catalogue of hard inputs and a probe bundle that exercises every transform op on them."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.spec.toml import write_toml

PROBE_SOURCE = Path(__file__).parent / "probe" / "echo_handler.py"
UTC = dt.UTC

# op, column, output, params, output type
PROBE_TRANSFORMS = [
    ("impute", "x", "x_imputed", {"value": -7.5}, "float64"),
    ("log1p", "x", "x_log1p", {}, "float64"),
    ("standard_scale", "x", "x_std", {"mean": 0.3, "std": 1.7}, "float64"),
    ("min_max_scale", "n", "n_minmax", {"min": -5.0, "max": 1000.0}, "float64"),
    ("clip", "x", "x_clip", {"lower": -1.0, "upper": 1.0}, "float64"),
    ("round", "x", "x_round", {"scale": 2}, "float64"),
    ("bucketize", "x", "x_bucket", {"boundaries": [-1.0, 0.0, 0.5, 2.0]}, "int64"),
    ("string_index", "s", "s_index", {"vocabulary": ["a", "b", "", "日本語", "🙂"]}, "int64"),
    ("one_hot", "s", "s", {"vocabulary": ["a", "b", ""]}, "int64"),
    ("hash_bucket", "s", "s_hash", {"buckets": 13}, "int64"),
    ("hash_bucket", "n", "n_hash", {"buckets": 7}, "int64"),
    ("datetime_part", "ts", "ts_hour_ny", {"part": "hour", "timezone": "America/New_York"}, "int64"),
    ("datetime_part", "ts", "ts_dow_berlin", {"part": "day_of_week", "timezone": "Europe/Berlin"}, "int64"),
    ("datetime_part", "ts_naive", "tsn_month", {"part": "month", "timezone": "Asia/Kolkata"}, "int64"),
]


def probe_outputs() -> list[tuple[str, str]]:
    outs = []
    for op, _col, output, params, typ in PROBE_TRANSFORMS:
        if op == "one_hot":
            outs += [(f"{output}_{v}", typ) for v in params["vocabulary"]]
        else:
            outs.append((output, typ))
    return outs


def write_probe_bundle(folder: Path, batch_size: int = 7) -> Path:
    """A python-kind bundle whose outputs are the transformed features themselves."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROBE_SOURCE, folder / "echo_handler.py")
    outs = probe_outputs()
    bundle = {
        "kind": "python",
        "entrypoint": "echo_handler:FeatureEcho",
        "batch_size": batch_size,
        "device": "cpu",
        "features": [name for name, _ in outs],
        "outputs": {f"out_{name}": typ for name, typ in outs},
        "transforms": [
            {"op": op, "column": col, "output": output, **params}
            for op, col, output, params, _ in PROBE_TRANSFORMS
        ],
    }
    write_toml(folder / "bundle.toml", bundle)
    return folder


def hard_table(rows: int = 400, seed: int = 0) -> pa.Table:
    """Edge values first, then random filler: every row has a unique int64 ``id``."""
    x_edges = [
        None,
        float("nan"),
        float("inf"),
        float("-inf"),
        -1.0,
        -1.0000001,
        -0.999999,
        -0.0,
        0.0,
        0.5,
        2.5,
        -2.5,
        0.125,
        0.375,
        2.675,
        1.005,
        1e300,
        -1e300,
        5e-324,
        1.0,
        2.0,
        1e16 + 1,
    ]
    s_edges = [
        None,
        "",
        "a",
        "b",
        "A",
        " a",
        "日本語",
        "🙂",
        "🙂🙂",
        "zz-unseen",
        "é",
        "e\u0301",
        "\x00",
        "ab",
        "abcde",
    ]
    n_edges = [None, 0, -1, 1, 2**31 - 1, -(2**31), 2**40, -(2**62), 999]
    ts_edges = [
        None,
        dt.datetime(2024, 3, 10, 6, 59, 59, tzinfo=UTC),
        dt.datetime(2024, 3, 10, 7, 0, 0, tzinfo=UTC),  # US DST starts
        dt.datetime(2024, 11, 3, 5, 59, 59, tzinfo=UTC),
        dt.datetime(2024, 11, 3, 6, 0, 0, tzinfo=UTC),  # US DST ends
        dt.datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC),
        dt.datetime(2024, 3, 31, 1, 0, 0, tzinfo=UTC),  # EU DST starts
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
    ]
    rng = np.random.default_rng(seed)
    n_rows = max(rows, len(x_edges), len(s_edges), len(n_edges), len(ts_edges))

    def column(edges, filler):
        return edges + [filler() for _ in range(n_rows - len(edges))]

    alphabet = list("ab日本🙂é ") + [""]
    x = column(x_edges, lambda: float(rng.choice([rng.normal(0, 3), np.round(rng.normal(0, 3), 3)])))
    s = column(
        s_edges, lambda: "".join(rng.choice(alphabet, rng.integers(0, 6))) if rng.random() > 0.1 else None
    )
    n = column(n_edges, lambda: int(rng.integers(-10, 1000)) if rng.random() > 0.1 else None)
    start = dt.datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    ts = column(ts_edges, lambda: dt.datetime.fromtimestamp(start + float(rng.integers(0, 366 * 86400)), UTC))
    naive = [t.replace(tzinfo=None) if t is not None else None for t in ts[::-1]]
    return pa.table(
        {
            "id": pa.array(np.arange(n_rows, dtype=np.int64)),
            "x": pa.array(x, type=pa.float64()),
            "s": pa.array(s, type=pa.string()),
            "n": pa.array(n, type=pa.int64()),
            "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
            "ts_naive": pa.array(naive, type=pa.timestamp("us")),
        }
    )


def write_layout(table: pa.Table, folder: Path, layout: str) -> Path:
    """Writes ``table`` as one file, many files, many tiny files, or one skewed big file + small ones."""
    folder.mkdir(parents=True, exist_ok=True)
    n = table.num_rows
    if layout in ("one_file", "empty", "single_row"):
        pq.write_table(table, folder / "part-000.parquet")
        return folder
    if layout == "many_files":
        bounds = np.linspace(0, n, 9).astype(int)
    elif layout == "tiny_partitions":
        bounds = np.arange(0, n + 1, max(1, n // 60)).tolist() + [n]
    elif layout == "skewed":
        big = int(n * 0.9)
        bounds = [0, big] + np.linspace(big, n, 6).astype(int)[1:].tolist()
    else:
        raise ValueError(layout)
    bounds = sorted(set(int(b) for b in bounds))
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        pq.write_table(
            table.slice(lo, hi - lo),
            folder / f"part-{i:03d}.parquet",
            row_group_size=max(1, (hi - lo) // 3 or 1),
        )
    return folder
