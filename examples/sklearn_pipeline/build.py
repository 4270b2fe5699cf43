"""Builds the sklearn_pipeline example: a scikit-learn Pipeline brought as it is, over a DataFrame.

A ColumnTransformer one-hot-encodes two string columns (nulls and an unseen merchant included),
imputes two numeric ones (a float with nulls and NaN, an integer with nulls) and turns a date
into days; a GradientBoostingClassifier scores the result. The bundle has no transforms: the
Pipeline is the whole model, and ``input = "dataframe"`` hands it the columns with their types.

    python -m examples.sklearn_pipeline.build [--size ROWS]
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa

from common.spec.toml import write_toml
from examples._torch_common import Stopwatch, build_cli, prepare_dirs, write_input
from examples.sklearn_pipeline.dates import EPOCH, days_since_2020

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 20_000
FEATURES = ["merchant_cat", "channel", "amount", "age", "signup_date"]
MERCHANTS = ["grocery", "fuel", "travel", "electronics", "gaming"]
CHANNELS = ["web", "store", "app"]


def generate(rows: int, seed: int) -> pa.Table:
    """Transactions: strings with nulls, an unseen merchant, a float with nulls and NaN, an
    integer with nulls, dates with nulls; ``label`` depends on all of them."""
    rng = np.random.default_rng(seed)
    merchant = rng.choice(MERCHANTS + ["casino"], rows, p=[0.19] * 5 + [0.05])
    channel = rng.choice(CHANNELS, rows)
    amount = rng.lognormal(3.5, 1.1, rows)
    age = rng.integers(18, 90, rows)
    days = rng.integers(0, 4 * 365, rows)
    logit = (
        0.8 * (np.log1p(amount) - 3.5)
        + 0.9 * np.isin(merchant, ["electronics", "gaming", "casino"])
        + 0.6 * (channel == "web")
        - 0.02 * (age - 50)
        - 0.001 * days
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    amount[rng.random(rows) < 0.03] = np.nan
    dates = [EPOCH + dt.timedelta(days=int(d)) for d in days]
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "merchant_cat": pa.array(merchant.tolist(), mask=rng.random(rows) < 0.03),
            "channel": pa.array(channel.tolist()),
            "amount": pa.array(amount, mask=rng.random(rows) < 0.03),
            "age": pa.array(age, mask=rng.random(rows) < 0.03),
            "signup_date": pa.array(dates, pa.date32(), mask=rng.random(rows) < 0.03),
            "label": pa.array(label),
        }
    )


def pipeline(seed: int):
    """ColumnTransformer (one-hot strings, imputed numbers, date -> days) + GradientBoosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    columns = ColumnTransformer(
        [
            ("strings", OneHotEncoder(handle_unknown="ignore"), ["merchant_cat", "channel"]),
            ("numbers", SimpleImputer(strategy="median"), ["amount", "age"]),
            ("dates", FunctionTransformer(days_since_2020), ["signup_date"]),
        ]
    )
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)
    return Pipeline([("columns", columns), ("model", model)])


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Fits the Pipeline on a pandas DataFrame read from Arrow, writes ``model/`` and ``data/``."""
    from sklearn.metrics import roc_auc_score

    size = DEFAULT_SIZE if size is None else size
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    train, holdout = generate(8_000, seed).to_pandas(), generate(2_000, seed + 1).to_pandas()
    model = pipeline(seed)
    with Stopwatch() as clock:
        model.fit(train[FEATURES], train["label"])
    auc = roc_auc_score(holdout["label"], model.predict_proba(holdout[FEATURES])[:, 1])
    joblib.dump(model, model_dir / "model.joblib")
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "sklearn_pipeline",
            "description": "a scikit-learn Pipeline over typed columns (strings, dates, nulls)",
            "kind": "sklearn",
            "artifact": "model.joblib",
            "input": "dataframe",
            "method": "predict_proba",
            "features": FEATURES,
            "batch_size": 2048,
            "device": "cpu",
            "outputs": {"score": "float64"},
        },
    )
    write_input(generate(size, seed + 2).drop_columns(["label"]), data_dir)
    return {"train_seconds": clock.seconds, "holdout_auc": round(float(auc), 4), "rows": size}


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
