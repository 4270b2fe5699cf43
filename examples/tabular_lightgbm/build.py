"""Builds the tabular_lightgbm example: a 3-class LightGBM model on a generated loan table.

Each applicant's risk tier (low, medium, high) is a noisy function of income, debt, credit history,
late payments, utilisation and the loan's term. The table has what real ones have: nulls (LightGBM's
missing value), a skewed income, a count column and an integer category code. The model is saved as
LightGBM text and predicts one probability per tier: ``multiclass`` gives 3 columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from common.spec.toml import write_toml
from examples._torch_common import Stopwatch, build_cli, prepare_dirs, write_input

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 50_000
TRAIN_ROWS, HOLDOUT_ROWS = 20_000, 5_000
FEATURES = [
    "income",
    "debt_to_income",
    "credit_years",
    "late_payments",
    "utilization",
    "term_months",
    "region",
]
TIERS = ["p_low", "p_medium", "p_high"]
ROUNDS = 80


def applicants(rows: int, rng: np.random.Generator) -> tuple[pa.Table, np.ndarray]:
    """A generated applicant table and each row's risk tier (0 low, 1 medium, 2 high)."""
    income = rng.lognormal(10.8, 0.6, rows)
    debt_to_income = rng.beta(2, 5, rows) * 1.2
    credit_years = rng.gamma(3, 4, rows)
    late_payments = rng.poisson(0.4 + 1.5 * debt_to_income, rows)
    utilization = rng.beta(2, 3, rows)
    term_months = rng.choice([12, 24, 36, 60], rows)
    region = rng.integers(0, 6, rows)
    risk = (
        -0.9 * (np.log(income) - 10.8)
        + 2.5 * debt_to_income
        - 0.08 * credit_years
        + 0.6 * late_payments
        + 1.5 * utilization
        + 0.01 * term_months
        + 0.3 * (region == 4)
        + rng.logistic(0, 0.5, rows)
    )
    tier = np.digitize(risk, np.quantile(risk, [0.5, 0.8]))

    def with_nulls(values: np.ndarray, share: float) -> pa.Array:
        return pa.array(values, mask=rng.random(rows) < share)

    table = pa.table(
        {
            "income": with_nulls(np.round(income, 2), 0.05),
            "debt_to_income": with_nulls(debt_to_income, 0.03),
            "credit_years": with_nulls(np.round(credit_years, 1), 0.02),
            "late_payments": pa.array(late_payments.astype(np.int64)),
            "utilization": with_nulls(utilization, 0.04),
            "term_months": pa.array(term_months.astype(np.int64)),
            "region": pa.array(region.astype(np.int64)),
        }
    )
    return table, tier


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains the model, writes ``model/`` (model.txt + bundle.toml) and ``data/input.parquet``.

    Args:
        size: rows in the prediction input (default 50,000); training does not depend on it.
        seed: seeds the data and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    import lightgbm

    size = DEFAULT_SIZE if size is None else size
    rng = np.random.default_rng(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    train, train_tier = applicants(TRAIN_ROWS, rng)
    holdout, holdout_tier = applicants(HOLDOUT_ROWS, rng)
    frame = train.to_pandas()  # nullable columns become float64 with NaN: LightGBM's missing value
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "learning_rate": 0.1,
        "num_leaves": 31,
        "num_threads": 1,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "verbose": -1,
    }
    with Stopwatch() as clock:
        model = lightgbm.train(params, lightgbm.Dataset(frame, train_tier), num_boost_round=ROUNDS)
    predicted = model.predict(holdout.to_pandas()).argmax(axis=1)
    accuracy = float((predicted == holdout_tier).mean())

    model.save_model(str(model_dir / "model.txt"))
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "tabular_lightgbm",
            "description": "3-class LightGBM risk tiers on a generated loan table",
            "kind": "lightgbm",
            "artifact": "model.txt",
            "method": "predict",
            "features": FEATURES,
            "batch_size": 4096,
            "device": "auto",
            "outputs": dict.fromkeys(TIERS, "float64"),
        },
    )
    scored, _ = applicants(size, np.random.default_rng(seed + 1))
    write_input(scored.append_column("id", pa.array(np.arange(size, dtype=np.int64))), data_dir)
    return {
        "train_seconds": clock.seconds,
        "holdout_accuracy": round(accuracy, 4),
        "holdout_majority_rate": round(float(np.bincount(holdout_tier).max() / len(holdout_tier)), 4),
        "rows": size,
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
