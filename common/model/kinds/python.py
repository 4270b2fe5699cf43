"""``python`` bundles: the bundle ships its own ``ModelHandler`` subclass (``entrypoint``)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from typing import TYPE_CHECKING

from common.errors import BundleError
from common.model.handler import ModelHandler

if TYPE_CHECKING:
    from common.spec.bundle import Bundle

#: the distributions whose versions can change this kind's results (a parity certificate records them):
#: the bundle's own code is in its content hash; torch runs the feature batch it is handed
LIBRARIES = ("torch",)


def entrypoint_class(bundle: Bundle) -> type[ModelHandler]:
    """Imports ``module:ClassName`` from the bundle folder (on whichever worker runs this).

    The module is registered under a name unique to the bundle folder, so two bundles that both
    ship ``handler.py`` never share code in one worker (Spark reuses Python workers across jobs).
    The folder is put on ``sys.path`` too, for the module's own sibling imports.
    """
    module_name, _, class_name = bundle.entrypoint.partition(":")
    folder = str(bundle.path)
    file = bundle.path.joinpath(*module_name.split(".")).with_suffix(".py")
    if not file.is_file():
        raise BundleError(
            f"bundle {bundle.path}: entrypoint module {module_name} not found ({file.name} is missing)"
        )
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
            raise BundleError(
                f"bundle {bundle.path}: cannot import entrypoint module {module_name}: {exc}"
            ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ModelHandler)):
        raise BundleError(
            f"bundle {bundle.path}: entrypoint {bundle.entrypoint} is not a ModelHandler subclass"
        )
    return cls
