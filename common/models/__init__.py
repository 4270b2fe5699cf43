"""Model handlers: one file per model kind, all behind ``ModelHandler`` (see ``base``)."""

from common.models.base import ModelHandler, handler_for, has_preprocess, resolve_device

__all__ = ["ModelHandler", "handler_for", "has_preprocess", "resolve_device"]
