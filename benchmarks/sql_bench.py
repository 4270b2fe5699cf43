"""``make bench`` part: compiled SQL expressions vs Spark's own evaluation vs hand-written code.

    python -m benchmarks.sql_bench [--rows 1000000] [--repeat 5] [--device cpu|cuda] [--no-spark]

The same feature expressions (a ratio, a CASE, a string clean-up, a date difference, a rounded
log) over one generated table, three ways: compiled by ``common.sql`` (what Ray and the reference
run), written by hand in pyarrow/torch (what a careful engineer would write, the target: within
1.5x), and evaluated by Spark itself (``selectExpr`` on a cached DataFrame, forced with the noop
writer). Each contender's best warm time is reported, with the compiled/hand-written ratio, in
``benchmarks/results/sql-<timestamp>/results.{md,json}``; outputs are checked equal first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from common.sql import compile_sql

RESULTS = Path(__file__).resolve().parent / "results"
EXPRESSIONS = {
    "ratio": "CASE WHEN items > 0 THEN amount / items ELSE NULL END",
    "clean": "lower(trim(merchant))",
    "age_days": "datediff(day, DATE'2020-01-01')",
    "log_amount": "round(log1p(greatest(amount, 0.0D)), 3)",
    "bucket": "CASE WHEN amount IS NULL THEN -1 WHEN amount < 10 THEN 0 WHEN amount < 100 THEN 1 ELSE 2 END",
}
_EPOCH_2020 = (dt.date(2020, 1, 1) - dt.date(1970, 1, 1)).days


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1.5, rows)
    amount_mask = rng.random(rows) < 0.02
    merchants = np.array(["  Acme Corp ", "BOB'S DINER", "café Zoë", " the Store", "Ünïcode Ltd  ", "x"])
    return pa.table(
        {
            "amount": pa.array(amount, mask=amount_mask),
            "items": pa.array(rng.integers(0, 20, rows).astype(np.int32)),
            "merchant": pa.array(merchants[rng.integers(0, len(merchants), rows)]),
            "day": pa.array(rng.integers(17000, 20000, rows).astype(np.int32)).cast(pa.date32()),
        }
    )


# ---- hand-written equivalents (the same Spark semantics, written directly) -------------------------


def _tensor(array: pa.ChunkedArray, device, dtype=None):
    array = array.combine_chunks()
    values = torch.from_numpy(pc.fill_null(array, 0).to_numpy(zero_copy_only=False).copy()).to(device)
    valid = torch.from_numpy(array.is_valid().to_numpy(zero_copy_only=False)).to(device)
    return (values if dtype is None else values.to(dtype)), valid


def hand_ratio(t: pa.Table, device):
    amount, amount_ok = _tensor(t["amount"], device)
    items, items_ok = _tensor(t["items"], device, torch.float64)
    ok = amount_ok & items_ok & (items > 0)
    return torch.where(
        ok, amount / torch.where(ok, items, torch.ones_like(items)), torch.zeros_like(amount)
    ), ok


def hand_clean(t: pa.Table, device):
    return pc.utf8_lower(pc.utf8_trim(t["merchant"], " "))


def hand_age_days(t: pa.Table, device):
    days, ok = _tensor(t["day"].cast(pa.int32()), device)
    return days - _EPOCH_2020, ok


def hand_log_amount(t: pa.Table, device):
    from common.sql.kernels_round import round_double

    amount, _ = _tensor(t["amount"], device)  # greatest skips a null: null amounts give log1p(0)
    return round_double(torch.log1p(torch.clamp(amount, min=0.0)), 3, "half_up"), None


def hand_bucket(t: pa.Table, device):
    amount, ok = _tensor(t["amount"], device)
    out = torch.where(amount < 10, 0, torch.where(amount < 100, 1, 2))
    return torch.where(ok, out, -1).to(torch.int32), None


HAND = {
    "ratio": hand_ratio,
    "clean": hand_clean,
    "age_days": hand_age_days,
    "log_amount": hand_log_amount,
    "bucket": hand_bucket,
}


def _to_arrow(result, typ: pa.DataType) -> pa.Array:
    if isinstance(result, (pa.Array, pa.ChunkedArray)):
        return result
    values, ok = result
    mask = None if ok is None else ~ok.cpu().numpy()
    return pa.array(values.cpu().numpy(), mask=mask).cast(typ)


def _best(fn, repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def run(rows: int, repeat: int, device: str, spark: bool) -> dict:
    table = make_table(rows)
    schema = {n: table.schema.field(n).type for n in table.column_names}
    results = {}
    session = _spark_session() if spark else None
    df = session.createDataFrame(table).cache() if session else None
    if df is not None:
        df.count()
    for name, expr in EXPRESSIONS.items():
        results[name] = _measure(name, expr, table, schema, repeat, device, df)
    if session is not None:
        df.unpersist()
    total = {k: sum(r[k] for r in results.values()) for k in ("compiled_s", "hand_written_s")}
    total["ratio"] = total["compiled_s"] / total["hand_written_s"]
    if spark:
        total["spark_s"] = sum(r["spark_s"] for r in results.values())
    return {"rows": rows, "device": device, "expressions": results, "total": total}


def _measure(name: str, expr: str, table: pa.Table, schema: dict, repeat: int, device: str, df) -> dict:
    """Best warm seconds of the three contenders for one expression, after checking them equal."""
    rows = table.num_rows
    compiled = compile_sql(expr, schema, ansi=True)
    columns = {n: table[n] for n in compiled.columns}
    ours = compiled.evaluate(columns, rows, device)
    theirs = _to_arrow(HAND[name](table, device), compiled.arrow_type)
    if not ours.equals(theirs.combine_chunks() if isinstance(theirs, pa.ChunkedArray) else theirs):
        raise AssertionError(f"{name}: the hand-written version disagrees with the compiled one")
    entry = {
        "expression": expr,
        "compiled_s": _best(lambda: compiled.evaluate(columns, rows, device), repeat),
        "hand_written_s": _best(lambda: _to_arrow(HAND[name](table, device), compiled.arrow_type), repeat),
    }
    entry["ratio"] = entry["compiled_s"] / entry["hand_written_s"]
    if df is not None:
        noop = df.selectExpr(f"{expr} AS out").write.format("noop").mode("overwrite")
        entry["spark_s"] = _best(noop.save, max(1, repeat // 2))
    return entry


def _spark_session():
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[*]")
        .appName("sql-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def to_markdown(result: dict) -> str:
    lines = [
        f"# Compiled SQL vs hand-written vs Spark ({result['rows']:,} rows, device {result['device']})",
        "",
        "| expression | compiled s | hand-written s | compiled / hand | Spark s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in [*result["expressions"].values(), result["total"]]:
        spark = f"{r['spark_s']:.3f}" if "spark_s" in r else "-"
        label = f"`{r['expression']}`" if "expression" in r else "**total**"
        lines.append(
            f"| {label} | {r['compiled_s']:.3f} | {r['hand_written_s']:.3f} | {r['ratio']:.2f}x | {spark} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = run(args.rows, args.repeat, args.device, spark=not args.no_spark)
    out = args.out or RESULTS / f"sql-{dt.datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(to_markdown(result))
    print(to_markdown(result))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
