"""The shared model interface, modelled on Apache Beam's ``ModelHandler``.

A handler must write two methods: ``load_model()`` (called once per worker process) and
``run_inference(batch, model)`` (called once per batch). Everything else is a hook with a neutral
default; ``preprocess(batch)`` holds the model-free CPU work (tokenizing), which the Ray pipeline
runs as its own CPU operator ahead of GPU replicas. The executors never call a model directly: they go through ``common.predictor``, which
adds the transforms, the output checks and the empty-batch rule around these two methods.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Mapping

import pyarrow as pa

from common.errors import BundleError

if TYPE_CHECKING:
    import torch

    from common.bundle import Bundle
    from common.features import FeatureBatch


class ModelHandler(ABC):
    """Loads one model and predicts batches of its features.

    Subclass it for a ``python`` bundle (``entrypoint = "module:ClassName"``): the class is built
    with ``(bundle, device)`` on every worker, so it must not hold state that cannot be rebuilt there.
    """

    def __init__(self, bundle: Bundle, device: torch.device | str = "cpu"):
        self.bundle = bundle
        self.device = device

    @abstractmethod
    def load_model(self) -> Any:
        """Loads the model from ``self.bundle``; called once per worker process."""

    @abstractmethod
    def run_inference(self, batch: FeatureBatch, model: Any) -> Any:
        """Predicts one non-empty batch.

        Args:
            batch: the batch's columns after the bundle's transforms; ``batch.matrix(features)``,
                ``batch.pandas(features)`` and ``batch.table(features)`` give the model's inputs.
            model: what ``load_model`` returned.

        Returns:
            The outputs, in the bundle's ``outputs`` order: a 2-D array or tensor of shape (n, k),
            a 1-D one for a single output, or a mapping / Arrow table / DataFrame by output name.
        """

    def preprocess(self, batch: FeatureBatch) -> Mapping[str, pa.Array]:
        """Model-free CPU work on one batch (tokenizing, decoding): new columns for ``run_inference``.

        Runs on the CPU with no model loaded, on whichever worker the engine picks: on Ray with GPU
        replicas as a CPU operator ahead of them, so it overlaps with GPU work; elsewhere just
        before ``run_inference`` in the same worker. So it must be row-wise and deterministic (a
        row's values depend on that row alone: Spark and Ray cut batches differently), and load
        what it needs itself (once per process, e.g. in a ``functools.cached_property``).

        Args:
            batch: the batch's columns after the bundle's transforms (``batch.arrow(name)``).

        Returns:
            New columns by name, one value per row, as Arrow arrays (``list<int32>`` token ids,
            say); ``run_inference`` reads them from its batch (``batch.padded(name)``). Their names
            must not be input or transform columns. An exception flags bad rows, as in
            ``run_inference``.
        """
        return {}

    def output_schema(self) -> pa.Schema:
        """The Arrow schema of the outputs; declared up front so empty batches need no model."""
        return self.bundle.output_schema

    def validate(self) -> None:
        """Cheap checks run on the driver before any engine starts; raise BundleError."""


def has_preprocess(handler: ModelHandler) -> bool:
    """Whether the handler's class overrides ``preprocess`` (a CPU stage has work to do)."""
    return type(handler).preprocess is not ModelHandler.preprocess


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is visible, else ``cpu``; ``cuda`` must exist."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise BundleError('bundle asks for device = "cuda" but no CUDA device is visible here')
    return requested


def handler_for(bundle: Bundle, device: str | None = None) -> ModelHandler:
    """Builds the handler for a bundle's kind on ``device`` (resolved from the bundle if None)."""
    device = device or resolve_device(bundle.device)
    if bundle.kind == "sklearn":
        from common.models.sklearn_model import SklearnHandler

        return SklearnHandler(bundle, device)
    if bundle.kind == "torch":
        from common.models.torch_model import TorchScriptHandler

        return TorchScriptHandler(bundle, device)
    return _python_handler_class(bundle)(bundle, device)


def _python_handler_class(bundle: Bundle) -> type[ModelHandler]:
    """Imports ``module:ClassName`` from the bundle folder (on whichever worker runs this).

    The module is registered under a name unique to the bundle folder, so two bundles that both
    ship ``handler.py`` never share code in one worker (Spark reuses Python workers across jobs).
    The folder is put on ``sys.path`` too, for the module's own sibling imports.
    """
    module_name, _, class_name = bundle.entrypoint.partition(":")
    folder = str(bundle.path)
    file = bundle.path.joinpath(*module_name.split(".")).with_suffix(".py")
    if not file.is_file():
        raise BundleError(f"bundle {bundle.path}: entrypoint module {module_name} not found ({file.name} is missing)")
    unique = f"_bundle_{hashlib.sha1(folder.encode()).hexdigest()[:12]}_{module_name.replace('.', '_')}"
    module = sys.modules.get(unique)
    if module is None:
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(unique, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[unique]
            raise BundleError(f"bundle {bundle.path}: cannot import entrypoint module {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ModelHandler)):
        raise BundleError(f"bundle {bundle.path}: entrypoint {bundle.entrypoint} is not a ModelHandler subclass")
    return cls
