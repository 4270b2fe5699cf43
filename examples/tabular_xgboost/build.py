"""Builds the tabular_xgboost example: an XGBoost Booster on scikit-learn's breast-cancer data.

The 30 measurements go through the bundle's transforms first (log1p of the skewed area and
perimeter columns, standard scaling, a clip), and the Booster is trained on those transform
outputs as a named DataFrame, so it is saved with feature names: the bundle's ``features``. The
prediction input resamples the 569 patients with a little multiplicative noise and some nulls
(XGBoost's missing value), so any size can be scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from common.model.features import FeatureBatch
from common.model.transform_ops import apply_transforms
from common.spec.toml import write_toml
from common.spec.transforms import parse_transforms
from examples._torch_common import Stopwatch, build_cli, prepare_dirs, write_input

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 20_000
NULL_SHARE = 0.02
ROUNDS = 60


def measurements() -> tuple[pa.Table, np.ndarray, list[str]]:
    """The data set as an Arrow table with snake_case columns, its labels (1 = benign), the names."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    return pa.table({n: data.data[:, i] for i, n in enumerate(names)}), data.target.astype(np.int64), names


def fit_transforms(table: pa.Table, names: list[str]) -> tuple[list[dict], list[str]]:
    """log1p for the skewed size columns, standard scaling for the rest, a clip on the scaled
    concavity; returns the ``[[transforms]]`` entries and the feature (transform output) names."""
    transforms, features = [], []
    for name in names:
        values = table.column(name).to_numpy()
        if "area" in name or "perimeter" in name:
            transforms.append({"op": "log1p", "column": name, "output": f"{name}_log"})
            features.append(f"{name}_log")
        else:
            output = f"{name}_z"
            mean, std = float(values.mean()), float(values.std())
            transforms.append(
                {"op": "standard_scale", "column": name, "output": output, "mean": mean, "std": std}
            )
            if "concav" in name:
                transforms.append({"op": "clip", "column": output, "lower": -3.0, "upper": 3.0})
            features.append(output)
    return transforms, features


def features_frame(table: pa.Table, transforms: list[dict], features: list[str]):
    """The training DataFrame, computed by the same transform code the Ray executor runs."""
    batch = FeatureBatch(table, "cpu")
    apply_transforms(batch, parse_transforms(transforms, "tabular_xgboost build"))
    return batch.pandas(features)


def noisy_sample(table: pa.Table, picks: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """The patients at ``picks`` (repeats allowed), each value times (1 + 1% noise), some nulls."""
    rows = len(picks)
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_numpy()[picks] * (1 + 0.01 * rng.standard_normal(rows))
        columns[name] = pa.array(values, mask=rng.random(rows) < NULL_SHARE)
    return pa.table(columns)


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains the Booster, writes ``model/`` (model.json + bundle.toml) and ``data/input.parquet``.

    Args:
        size: rows in the prediction input (default 20,000); training does not depend on it.
        seed: seeds the split, the noise and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    import xgboost
    from sklearn.metrics import roc_auc_score

    size = DEFAULT_SIZE if size is None else size
    rng = np.random.default_rng(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    table, labels, names = measurements()
    order = rng.permutation(table.num_rows)
    train_rows, holdout_rows = order[:450], order[450:]
    picks = np.tile(train_rows, 4)  # four noisy copies of each training patient
    train, train_labels = noisy_sample(table, picks, np.random.default_rng(seed + 1)), labels[picks]
    transforms, features = fit_transforms(table.take(train_rows), names)
    with Stopwatch() as clock:
        booster = xgboost.train(
            {
                "objective": "binary:logistic",
                "max_depth": 4,
                "eta": 0.2,
                "subsample": 0.9,
                "nthread": 1,
                "seed": seed,
            },
            xgboost.DMatrix(features_frame(train, transforms, features), label=train_labels),
            num_boost_round=ROUNDS,
        )
    holdout = features_frame(table.take(holdout_rows), transforms, features)
    auc = roc_auc_score(labels[holdout_rows], booster.predict(xgboost.DMatrix(holdout)))

    booster.save_model(str(model_dir / "model.json"))
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "tabular_xgboost",
            "description": "XGBoost on breast-cancer measurements; the Booster knows its features by name",
            "kind": "xgboost",
            "artifact": "model.json",
            "method": "predict",
            "features": features,
            "batch_size": 4096,
            "device": "auto",
            "outputs": {"p_benign": "float32"},
            "transforms": transforms,
        },
    )
    sample_rng = np.random.default_rng(seed + 2)
    scored = noisy_sample(table, sample_rng.integers(0, table.num_rows, size), sample_rng)
    write_input(scored.append_column("id", pa.array(np.arange(size, dtype=np.int64))), data_dir)
    return {
        "train_seconds": clock.seconds,
        "holdout_auc": round(float(auc), 4),
        "rows": size,
        "rounds": ROUNDS,
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
