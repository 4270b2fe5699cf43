"""Builds the tabular scikit-learn example: generated transactions and a HistGradientBoosting model.

The label depends on amount, income, age, merchant, channel, country and the local hour, so every
transform feeds the signal. Four ``sql`` transforms (Spark SQL expressions: a ratio, a CASE, a string
clean-up and a date difference) run as written on Spark and compiled on Ray and the reference.
Training applies the bundle's own transforms (``common.spec.transforms``) to the training rows, so
the model learns on exactly the features it will be served.

    python -m examples.tabular_sklearn.build [--size ROWS]
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.model.features import FeatureBatch
from common.model.transform_ops import apply_transforms
from common.spec.transforms import parse_transforms

HERE = Path(__file__).parent
MERCHANTS = ["grocery", "fuel", "travel", "electronics", "restaurants", "pharmacy", "fashion", "gaming"]
CHANNELS = ["web", "store", "app"]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "NG", "Zürich", "日本", "", " us", "de ", "  gb  "]

BUNDLE_TOML = """\
name = "fraud_hgb"
kind = "sklearn"
artifact = "model.joblib"
method = "predict_proba"
batch_size = 2048
device = "cpu"
features = [
  "amount_log", "income_z", "age_scaled", "ratio_round", "age_bucket", "merchant_idx",
  "channel_web", "channel_store", "channel_app", "country_bucket", "local_hour", "local_dow",
  "amount_per_income", "risk_band", "days_into_month",
]

[outputs]
score = "float64"

[[transforms]]
op = "impute"
column = "amount"
output = "amount_filled"
value = 0.0

[[transforms]]
op = "log1p"
column = "amount_filled"
output = "amount_log"

[[transforms]]
op = "clip"
column = "amount_log"
lower = 0.0
upper = 9.0

[[transforms]]
op = "standard_scale"
column = "income"
output = "income_z"
mean = {income_mean!r}
std = {income_std!r}

[[transforms]]
op = "min_max_scale"
column = "age"
output = "age_scaled"
min = 18.0
max = 90.0

[[transforms]]
op = "round"
column = "debt_ratio"
output = "ratio_round"
scale = 2

[[transforms]]
op = "bucketize"
column = "age"
output = "age_bucket"
boundaries = [25.0, 35.0, 50.0, 65.0]

[[transforms]]
op = "string_index"
column = "merchant"
output = "merchant_idx"
vocabulary = {merchants!r}

[[transforms]]
op = "one_hot"
column = "channel"
vocabulary = ["web", "store", "app"]

[[transforms]]
op = "sql"
output = "country_clean"
expr = "upper(trim(country))"

[[transforms]]
op = "hash_bucket"
column = "country_clean"
output = "country_bucket"
buckets = 16

[[transforms]]
op = "sql"
output = "amount_per_income"
expr = "amount / income * 1000.0D"

[[transforms]]
op = "sql"
output = "risk_band"
expr = "CASE WHEN debt_ratio > 1.0D THEN 2 WHEN debt_ratio > 0.5D THEN 1 ELSE 0 END"

[[transforms]]
op = "sql"
output = "days_into_month"
expr = "datediff(to_date(event_time), DATE'2024-03-01')"

[[transforms]]
op = "datetime_part"
column = "event_time"
output = "local_hour"
part = "hour"
timezone = "America/New_York"

[[transforms]]
op = "datetime_part"
column = "event_time"
output = "local_dow"
part = "day_of_week"
timezone = "America/New_York"
"""


def generate(rows: int, seed: int) -> pa.Table:
    """Transactions with nulls, NaN, unseen categories and a DST change inside the time range."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.5, 1.2, rows)
    amount[rng.random(rows) < 0.03] = np.nan
    income = rng.normal(55_000, 18_000, rows)
    age = rng.integers(18, 90, rows)
    debt_ratio = rng.uniform(0, 1.5, rows)
    merchant = rng.choice(MERCHANTS + ["casino"], rows, p=[0.12] * 8 + [0.04])
    channel = rng.choice(CHANNELS, rows)
    country = rng.choice(COUNTRIES, rows)
    start = np.datetime64("2024-03-01T00:00:00", "s").astype(np.int64)
    seconds = rng.integers(0, 30 * 86400, rows) + start  # March 2024: US DST starts on the 10th
    local_hour = ((seconds // 3600) - 5) % 24
    logit = (
        0.9 * (np.log1p(np.nan_to_num(amount)) - 3.5)
        - 0.00003 * (income - 55_000)
        + 0.8 * np.isin(merchant, ["electronics", "gaming", "casino"])
        + 0.6 * (channel == "web")
        + 0.7 * ((local_hour < 5) | (local_hour > 22))
        + 0.5 * (debt_ratio > 1.0)
        - 0.015 * (age - 50)
        - 1.0
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    age_col = pa.array(age, mask=rng.random(rows) < 0.02)
    merchant_col = pa.array(merchant.tolist(), mask=rng.random(rows) < 0.02)
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "amount": pa.array(amount, mask=rng.random(rows) < 0.02),
            "income": pa.array(income),
            "age": age_col,
            "debt_ratio": pa.array(debt_ratio),
            "merchant": merchant_col,
            "channel": pa.array(channel.tolist()),
            "country": pa.array(country.tolist()),
            "event_time": pa.array(seconds * 1_000_000, type=pa.timestamp("us", tz="UTC")),
            "label": pa.array(label),
        }
    )


def build(size: int | None = None, seed: int = 0, out_dir: Path | None = None) -> dict:
    """Writes ``data/input.parquet`` (``size`` rows to score) and the bundle in ``model/``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    out_dir = Path(out_dir or HERE)
    size = size or 5_000
    started = time.perf_counter()
    train = generate(20_000, seed)
    holdout = generate(5_000, seed + 1)
    model_dir = out_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    income = train.column("income").to_numpy()
    text = BUNDLE_TOML.format(
        income_mean=float(income.mean()), income_std=float(income.std()), merchants=MERCHANTS
    )
    (model_dir / "bundle.toml").write_text(text)
    raw = tomllib.loads(text)
    transforms = parse_transforms(raw["transforms"], "bundle.toml")

    def features(table: pa.Table):
        batch = FeatureBatch(table)
        apply_transforms(batch, transforms)
        return batch.pandas(raw["features"])

    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=seed)
    model.fit(features(train), train.column("label").to_numpy())
    joblib.dump(model, model_dir / "model.joblib")
    auc = roc_auc_score(holdout.column("label").to_numpy(), model.predict_proba(features(holdout))[:, 1])

    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(generate(size, seed + 2).drop_columns(["label"]), data_dir / "input.parquet")
    return {
        "rows": size,
        "train_seconds": round(time.perf_counter() - started, 2),
        "holdout_auc": round(float(auc), 4),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=None, help="rows to score (default 5000)")
    print(build(parser.parse_args().size))
