"""Builds the mlflow_model example: a scikit-learn Pipeline saved as an MLflow model folder.

The sklearn_pipeline example's transactions and ColumnTransformer (strings one-hot-encoded,
numbers imputed) with a GradientBoostingClassifier, saved with ``mlflow.sklearn.save_model``
(signature inferred from the training frame, ``predict_proba`` as the pyfunc's predict) into
``model/mlflow_model``. The bundle names that folder as its ``artifact``: no tracking server is
needed, and nothing is downloaded. A registry model is ``model_uri = "models:/name/3"`` instead.

    python -m examples.mlflow_model.build [--size ROWS]
"""

from __future__ import annotations

from pathlib import Path

from common.spec.toml import write_toml
from examples._torch_common import Stopwatch, build_cli, prepare_dirs, write_input
from examples.sklearn_pipeline.build import generate

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 20_000
FEATURES = ["merchant_cat", "channel", "amount", "age"]


def pipeline(seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer(
        [
            ("strings", OneHotEncoder(handle_unknown="ignore"), ["merchant_cat", "channel"]),
            ("numbers", SimpleImputer(strategy="median"), ["amount", "age"]),
        ]
    )
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)
    return Pipeline([("columns", columns), ("model", model)])


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Fits and saves the MLflow model in ``model/mlflow_model``; writes ``data/input.parquet``."""
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.metrics import roc_auc_score

    size = DEFAULT_SIZE if size is None else size
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    train, holdout = generate(8_000, seed).to_pandas(), generate(2_000, seed + 1).to_pandas()
    model = pipeline(seed)
    with Stopwatch() as clock:
        model.fit(train[FEATURES], train["label"])
    auc = roc_auc_score(holdout["label"], model.predict_proba(holdout[FEATURES])[:, 1])
    mlflow.sklearn.save_model(
        model,
        str(model_dir / "mlflow_model"),
        signature=infer_signature(train[FEATURES], model.predict_proba(train[FEATURES])),
        pyfunc_predict_fn="predict_proba",
        serialization_format="cloudpickle",  # skops, MLflow's default, would need the full mlflow
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # inferring them loads the model again
    )
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "mlflow_model",
            "description": "an MLflow pyfunc model (a sklearn Pipeline) from a local folder",
            "kind": "mlflow",
            "artifact": "mlflow_model",
            "features": FEATURES,
            "batch_size": 2048,
            "device": "cpu",
            "outputs": {"p_legit": "float64", "p_fraud": "float64"},
        },
    )
    write_input(generate(size, seed + 2).drop_columns(["label", "signup_date"]), data_dir)
    return {"train_seconds": clock.seconds, "holdout_auc": round(float(auc), 4), "rows": size}


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
