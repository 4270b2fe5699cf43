"""Bundle kinds: one file per kind, each a ``ModelHandler``, found by name in ``KINDS``.

A kind's module imports its model library lazily (inside its methods), so that looking a kind
up, or parsing a bundle on the driver, costs nothing. Adding a kind is one file here and one
entry in ``KINDS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from common.model.handler import ModelHandler
    from common.spec.bundle import Bundle

#: kind -> ``module:attribute``: a ``ModelHandler`` subclass, or a function of the bundle that
#: returns one (a ``python`` bundle names its own class).
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


def pin_remote_model(bundle: Bundle) -> None:
    """Brings a model that ``bundle`` names by ``model_uri`` into its folder, on the driver, so that
    the bundle's content hash covers it (only ``mlflow`` bundles have one)."""
    from common.model.kinds.mlflow import pin_model

    pin_model(bundle)


def handler_class(bundle: Bundle) -> type[ModelHandler]:
    """The ``ModelHandler`` subclass that serves ``bundle`` (its kind's, or its entrypoint)."""
    from common.model.handler import ModelHandler

    module_name, _, attribute = KINDS[bundle.kind].partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    return found if isinstance(found, type) and issubclass(found, ModelHandler) else found(bundle)


def handler_for(bundle: Bundle, device: str | None = None) -> ModelHandler:
    """Builds the handler for a bundle on ``device`` (resolved from the bundle's ``device`` if None)."""
    from common.model.handler import resolve_device

    return handler_class(bundle)(bundle, device or resolve_device(bundle.device))
