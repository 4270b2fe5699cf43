"""Bundle kinds: one file per kind, each a ``ModelHandler``, found by name in ``common.spec.kinds``.

A kind's module imports its model library lazily (inside its methods), so that looking a kind
up, or parsing a bundle on the driver, costs nothing. Each kind's module declares ``LIBRARIES``:
the distributions whose versions can change its results (a parity certificate records them).
Adding a kind is one file here (its handler and its ``LIBRARIES``) and one entry in
``common.spec.kinds.KINDS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from common.spec.kinds import KINDS

if TYPE_CHECKING:
    from common.model.handler import ModelHandler
    from common.spec.bundle import Bundle


def pin_remote_model(bundle: Bundle) -> None:
    """Brings a model that ``bundle`` names by ``model_uri`` into its folder, on the driver, so that
    the bundle's content hash covers it (only ``mlflow`` bundles have one); else nothing."""
    if bundle.model_uri is None:
        return
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


def kind_libraries(kind: str) -> tuple[str, ...]:
    """The distributions (PyPI names) whose versions can change a ``kind`` bundle's results, as the
    kind's module declares them in ``LIBRARIES``; a kind with CPU and GPU builds of one module lists
    both. A module without ``LIBRARIES`` raises: a kind never goes uncertified silently."""
    module = importlib.import_module(KINDS[kind].partition(":")[0])
    return tuple(module.LIBRARIES)
