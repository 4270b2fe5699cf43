"""Bundle kinds by name: the values a bundle's ``kind`` may take, and where each kind's handler is.

A bundle names its kind in ``bundle.toml``, so the names belong to what users write; the handlers
(``common.model.kinds``, one file per kind) are named here as strings and imported only when a
bundle runs, so parsing a bundle imports no model code.
"""

from __future__ import annotations

#: kind -> ``module:attribute``: a ``ModelHandler`` subclass, or a function of the bundle that
#: returns one (a ``python`` bundle names its own class). The module also declares ``LIBRARIES``.
KINDS: dict[str, str] = {
    "sklearn": "common.model.kinds.sklearn:SklearnHandler",
    "torch": "common.model.kinds.torchscript:TorchScriptHandler",
    "python": "common.model.kinds.python:entrypoint_class",
    "xgboost": "common.model.kinds.xgboost:XGBoostHandler",
    "lightgbm": "common.model.kinds.lightgbm:LightGBMHandler",
    "onnx": "common.model.kinds.onnx:OnnxHandler",
    "transformers": "common.model.kinds.hf_transformers:TransformersHandler",
    "spark_ml": "common.model.kinds.spark_ml:SparkMLHandler",
    "mlflow": "common.model.kinds.mlflow:MlflowHandler",
}


def kind_names() -> list[str]:
    return sorted(KINDS)
