"""Checks and helpers shared by the library-backed kinds (xgboost, lightgbm, onnx, transformers).

Every message names the bundle and the field at fault, so a bad bundle is one clear line on the
driver at preflight (``ModelHandler.validate``), before any engine starts.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from common.errors import BundleError

if TYPE_CHECKING:
    from common.spec.bundle import Bundle


def bundle_error(bundle: Bundle, field: str, message: str) -> BundleError:
    """``bundle <folder>: field "<field>": <message>``, the one line every kind raises."""
    return BundleError(f'bundle {bundle.path}: field "{field}": {message}')


def import_library(bundle: Bundle, module: str, package: str) -> ModuleType:
    """The kind's library, imported on first use (kind modules import nothing heavy at load); a
    missing one is a BundleError naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise bundle_error(
            bundle,
            "kind",
            f'"{bundle.kind}" needs the {package} package, which cannot be imported here ({exc}); '
            "make venv installs it",
        ) from None


def artifact_error(bundle: Bundle, exc: BaseException) -> BundleError:
    """A missing or unreadable artifact, with the library's own reason (first line only)."""
    reason = " ".join(str(exc).split("\n", 1)[0].split()) or type(exc).__name__
    if bundle.artifact.is_file() and bundle.artifact.stat().st_size == 0:
        reason = "the file is empty (0 bytes)"
    return bundle_error(bundle, "artifact", f"cannot load {bundle.artifact.name}: {reason}")


def check_numeric_outputs(bundle: Bundle, columns: int, what: str) -> None:
    """The model gives ``columns`` numbers per row (``what`` says why); the bundle must declare as
    many numeric outputs, in order."""
    if columns != len(bundle.outputs):
        raise bundle_error(
            bundle,
            "outputs",
            f"the model gives {columns} column(s) per row ({what}) "
            f"but outputs declares {len(bundle.outputs)} "
            f"({', '.join(bundle.outputs)})",
        )
    for name, typ in bundle.outputs.items():
        if not (pa.types.is_floating(typ) or pa.types.is_integer(typ)):
            raise bundle_error(bundle, f"outputs.{name}", f"is {typ}; this model's outputs are numbers")


def check_feature_names(
    bundle: Bundle, names: list[str] | None, count: int, default_names: bool = False
) -> None:
    """A model saved with feature names must name exactly the bundle's ``features``, in order;
    one saved without (or with its library's placeholder names) must take as many."""
    features = list(bundle.features)
    if names and not default_names and names != features:
        differ = next(
            i for i in range(max(len(names), len(features))) if names[i : i + 1] != features[i : i + 1]
        )
        model_name = names[differ] if differ < len(names) else "(none)"
        bundle_name = features[differ] if differ < len(features) else "(none)"
        raise bundle_error(
            bundle,
            "features",
            f"the model was trained on features named {names} but the bundle lists {features} "
            f"(first difference at position {differ}: model {model_name!r}, bundle {bundle_name!r})",
        )
    if count != len(features):
        raise bundle_error(
            bundle, "features", f"the model takes {count} features but the bundle lists {len(features)}"
        )


def cuda_unavailable(bundle: Bundle, device: str, library: str, hint: str) -> str:
    """What a kind does when the replica's device is CUDA but its library build cannot use it:
    ``device = "cuda"`` in the bundle is an error; ``auto`` runs on the CPU, with a warning (never
    silently). Returns the device to use."""
    if bundle.device == "cuda":
        raise bundle_error(bundle, "device", f'"cuda" but the installed {library} cannot use CUDA ({hint})')
    warnings.warn(
        f"bundle {bundle.path}: {library} cannot use CUDA here ({hint}); running on the CPU", stacklevel=3
    )
    return "cpu"


def worker_threads() -> int:
    """The CPU threads this worker may use: the executors cap torch's threads at the worker's CPU
    share before ``load_model`` (Spark: ``spark.task.cpus``; Ray: the replica's CPUs), and the
    other libraries follow the same share so that workers never oversubscribe the machine."""
    import torch

    return max(1, torch.get_num_threads())


def device_index(device: Any) -> int:
    """``cuda:1`` -> 1; ``cuda`` -> 0."""
    import torch

    index = torch.device(device).index
    return 0 if index is None else index
