"""The shared model interface, modelled on Apache Beam's ``ModelHandler``.

A handler must write two methods: ``load_model()`` (called once per worker process) and
``run_inference(batch, model)`` (called once per batch). Everything else is a hook with a
neutral default: ``validate()`` runs on the driver before any engine starts; ``preprocess(batch)``
holds the model-free CPU work (tokenizing), which the Ray pipeline runs as its own CPU operator
ahead of GPU replicas. The executors never call a model directly: they go through
``common.model.predictor``, which adds the transforms, the output checks and the empty-batch rule
around these methods. The handler of each bundle kind lives in ``common.model.kinds``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from common.errors import BundleError

if TYPE_CHECKING:
    import torch

    from common.model.features import FeatureBatch
    from common.spec.bundle import Bundle


class ModelHandler(ABC):
    """Loads one model and predicts batches of its features.

    Subclass it for a ``python`` bundle (``entrypoint = "module:ClassName"``): the class is built
    with ``(bundle, device)`` on every worker, so it must not hold state that cannot be rebuilt there.
    """

    #: The values ``method`` may take in the bundle; empty when the kind has no methods.
    methods: tuple[str, ...] = ()
    #: The values ``task`` may take in the bundle; empty when the kind has none (then no ``task``).
    tasks: tuple[str, ...] = ()
    #: Whether every feature must be numeric (read as a float matrix); the driver then checks the
    #: input's types against the transforms before any engine starts.
    numeric_features: bool = False

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
        return self.bundle.outputs_schema

    def validate(self) -> None:
        """Checks of the bundle for this kind, run on the driver before any engine starts.

        The default checks ``method`` against ``methods`` and ``task`` against ``tasks``. Override
        it (and call it) for checks
        that need the artifact or the library: the runner calls it once, at preflight, and a
        ``BundleError`` names the bundle and the field at fault.
        """
        if self.methods and self.bundle.method not in self.methods:
            raise BundleError(
                f'bundle {self.bundle.path}: field "method" is "{self.bundle.method}"; '
                f"valid for kind {self.bundle.kind}: {', '.join(self.methods)}"
            )
        task = self.bundle.task
        if (task is not None or self.tasks) and task not in self.tasks:
            valid = f"valid: {', '.join(self.tasks)}" if self.tasks else "this kind takes no task"
            raise BundleError(f'bundle {self.bundle.path}: field "task" is {task!r}; {valid}')


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
