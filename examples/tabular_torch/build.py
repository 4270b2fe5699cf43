"""Builds the tabular_torch example: a torch MLP whose numeric preprocessing lives in the bundle.

The data is a generated customer table with what real tables have: nulls, NaNs, a skewed income,
a balance with outliers, a count column, a category. The target (``churned``) is a noisy, non-linear
function of the clean values. Preprocessing (impute, log1p, clip, scale, bucketize, one-hot) is
fitted here and declared as the bundle's ``[[transforms]]``: Ray runs them as torch ops on the
model's device, Spark as columns before the UDF. Training features come from the same
``common.spec.transforms`` code the Ray path runs, so training and serving cannot disagree.
The model is TorchScript: it loads without this file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from common.model.features import FeatureBatch
from common.model.transform_ops import apply_transforms
from common.spec.toml import write_toml
from common.spec.transforms import parse_transforms
from examples._torch_common import (
    Stopwatch,
    build_cli,
    prepare_dirs,
    seed_everything,
    training_threads,
    write_input,
)

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 100_000
TRAIN_ROWS, HOLDOUT_ROWS = 20_000, 5_000
PLANS = ["basic", "plus", "pro"]  # the input also has "legacy", unseen in training: all one-hot zeros
TENURE_BOUNDARIES = [6.0, 12.0, 24.0, 48.0, 96.0]
FEATURES = [
    "age_z",
    "log_income_z",
    "balance_z",
    "tenure_bucket",
    "txn_scaled",
    "utilization",
    "plan_basic",
    "plan_plus",
    "plan_pro",
]
EPOCHS = 12


def customers(rng: np.random.Generator, rows: int, with_legacy_plan: bool = False) -> pa.Table:
    """A generated customer table and its ``churned`` label (also returned as a column)."""
    age = rng.uniform(18, 90, rows)
    income = rng.lognormal(10.5, 0.8, rows)
    balance = rng.normal(2_000, 1_500, rows)
    outliers = rng.random(rows) < 0.01
    balance[outliers] *= rng.uniform(20, 60, outliers.sum())
    tenure = rng.integers(0, 240, rows).astype(np.float64)
    txn = rng.poisson(rng.gamma(1.5, 8.0, rows)).astype(np.int64)
    utilization = rng.beta(2, 3, rows)
    plan_choices = PLANS + (["legacy"] if with_legacy_plan else [])
    plan = rng.choice(plan_choices, rows, p=None if not with_legacy_plan else [0.3, 0.3, 0.3, 0.1])

    # The signal, from clean values: income and tenure protect, a high balance and high utilization
    # on the basic plan push to churn, young and old churn more than middle-aged.
    logit = (
        -0.9 * (np.log1p(income) - 10.5) / 0.8
        + 0.7 * np.clip(balance, -2_000, 8_000) / 2_000
        - 1.2 * (tenure >= 24)
        - 0.8 * (tenure >= 96)
        + 0.8
        + 2.5 * utilization * (plan == "basic")
        - 0.6 * (plan == "pro")
        + 0.002 * (age - 52) ** 2
        - 0.8
        - 0.4 * np.log1p(txn)
        + 0.9
    )
    churned = (logit + rng.logistic(0, 0.6, rows) > 0).astype(np.int64)

    def with_nulls(values: np.ndarray, share: float) -> pa.Array:
        return pa.array(values, mask=rng.random(rows) < share)

    utilization[rng.random(rows) < 0.03] = np.nan  # NaN, not null: impute must catch both
    return pa.table(
        {
            "age": with_nulls(np.round(age), 0.05),
            "income": with_nulls(np.round(income, 2), 0.08),
            "balance": with_nulls(np.round(balance, 2), 0.02),
            "tenure_months": with_nulls(tenure.astype(np.int64), 0.03),
            "num_transactions": pa.array(txn),
            "utilization": pa.array(utilization),
            "plan": with_nulls(plan.astype(object), 0.02),
            "churned": pa.array(churned),
        }
    )


def fit_transforms(table: pa.Table) -> list[dict]:
    """Fits the preprocessing on the training table; returns ``[[transforms]]`` entries."""

    def column(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)  # null -> NaN

    age = column("age")
    age_median = float(np.nanmedian(age))
    age_filled = np.where(np.isnan(age), age_median, age)
    income = column("income")
    income_median = float(np.nanmedian(income))
    log_income = np.log1p(np.where(np.isnan(income), income_median, income))
    balance = column("balance")
    lower, upper = (float(v) for v in np.nanpercentile(balance, [1, 99]))
    balance_clipped = np.clip(np.where(np.isnan(balance), np.nanmedian(balance), balance), lower, upper)
    log_txn = np.log1p(column("num_transactions"))
    return [
        {"op": "impute", "column": "age", "value": age_median},
        {
            "op": "standard_scale",
            "column": "age",
            "output": "age_z",
            "mean": age_filled.mean(),
            "std": age_filled.std(),
        },
        {"op": "impute", "column": "income", "value": income_median},
        {"op": "log1p", "column": "income", "output": "log_income_z"},
        {
            "op": "standard_scale",
            "column": "log_income_z",
            "mean": log_income.mean(),
            "std": log_income.std(),
        },
        # clip before impute: the clip maps a null to null, the median then fills it
        {"op": "clip", "column": "balance", "output": "balance_z", "lower": lower, "upper": upper},
        {"op": "impute", "column": "balance_z", "value": float(np.nanmedian(balance))},
        {
            "op": "standard_scale",
            "column": "balance_z",
            "mean": balance_clipped.mean(),
            "std": balance_clipped.std(),
        },
        {"op": "impute", "column": "tenure_months", "value": float(np.nanmedian(column("tenure_months")))},
        {
            "op": "bucketize",
            "column": "tenure_months",
            "output": "tenure_bucket",
            "boundaries": TENURE_BOUNDARIES,
        },
        {"op": "log1p", "column": "num_transactions", "output": "txn_scaled"},
        {
            "op": "min_max_scale",
            "column": "txn_scaled",
            "min": float(log_txn.min()),
            "max": float(log_txn.max()),
        },
        {"op": "impute", "column": "utilization", "value": float(np.nanmean(column("utilization")))},
        {"op": "one_hot", "column": "plan", "vocabulary": PLANS},
    ]


def features(table: pa.Table, transforms: list[dict]) -> torch.Tensor:
    """The model's input matrix, computed by the same transform code the Ray executor runs."""
    batch = FeatureBatch(table, "cpu")
    apply_transforms(batch, parse_transforms(transforms, "tabular_torch build"))
    return batch.matrix(FEATURES, dtype=torch.float32)


class ChurnModel(nn.Module):
    """The MLP plus the output mapping, so that the TorchScript file is the whole model."""

    def __init__(self, inputs: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(inputs, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        score = torch.sigmoid(self.mlp(x).squeeze(1).double())
        return {"score": score, "label": (score > 0.5).long()}


def train(x: torch.Tensor, y: torch.Tensor) -> ChurnModel:
    model = ChurnModel(x.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 256):
            rows = order[start : start + 256]
            loss = loss_fn(model.mlp(x[rows]).squeeze(1), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Fits the transforms, trains the MLP, writes ``model/`` (TorchScript + bundle.toml) and ``data/``.

    Args:
        size: rows in the prediction input (default 100,000); training does not depend on it.
        seed: seeds the data and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    size = DEFAULT_SIZE if size is None else size
    rng = seed_everything(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    train_table, holdout_table = customers(rng, TRAIN_ROWS), customers(rng, HOLDOUT_ROWS)
    transforms = fit_transforms(train_table)
    labels = lambda t: torch.tensor(t.column("churned").to_numpy(), dtype=torch.float32)  # noqa: E731
    with training_threads(), Stopwatch() as clock:
        model = train(features(train_table, transforms), labels(train_table))
    with torch.inference_mode():
        predicted = model(features(holdout_table, transforms))["label"]
    holdout = labels(holdout_table).long()
    accuracy = float((predicted == holdout).float().mean())

    torch.jit.script(model).save(str(model_dir / "model.pt"))
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "tabular_torch",
            "description": "MLP churn model; its numeric preprocessing is the [[transforms]] below",
            "kind": "torch",
            "artifact": "model.pt",
            "features": FEATURES,
            "batch_size": 4096,
            "device": "auto",
            "outputs": {"score": "float64", "label": "int64"},
            "transforms": transforms,
        },
    )
    write_input(
        customers(np.random.default_rng(seed + 1), size, with_legacy_plan=True).append_column(
            "id", pa.array(np.arange(size, dtype=np.int64))
        ),
        data_dir,
    )
    return {
        "train_seconds": clock.seconds,
        "holdout_accuracy": accuracy,
        "holdout_majority_rate": float(max(holdout.float().mean(), 1 - holdout.float().mean())),
        "rows": size,
        "train_rows": TRAIN_ROWS,
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
