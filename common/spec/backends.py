"""Backends by name: the names users write (``--backend``, a job file's ``[<name>]`` section) and
the package that serves each.

The registry names each backend's module as a string and imports it only when asked (a job file
is parsed, a job runs), so ``common`` has no import of any backend package, and none of an engine:
a backend package's ``__init__`` declares its ``BACKEND`` (name, settings class, executor module;
``common.run.backends.EngineBackend``) without importing pyspark or ray. Adding a backend is one
package and one entry in ``BACKENDS``; its job-file section, the CLI's ``--backend`` choices and the
test suite's backend parameters all come from here.
"""

from __future__ import annotations

import importlib
from typing import Any

#: backend name -> the module whose ``BACKEND`` serves it.
BACKENDS = {
    "spark": "spark_backend",
    "ray": "ray_backend",
    "reference": "common.run.reference",
    "legacy": "spark_backend.legacy",
}
#: the backend that checks the others: it runs in the driver's process, with no engine.
REFERENCE = "reference"
#: the backend that runs a bundle's original Spark ML pipeline (``legacy_pipeline``) instead of the
#: bundle: a side only for bundles imported from one, and then the side every other is checked against.
LEGACY = "legacy"
#: not a backend: ``--backend auto`` picks ray or spark by the job's parity certificate
#: (``common.rollout.certificate.choose_backend``, resolved by the CLI above the runner).
AUTO = "auto"


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def choosable_names() -> list[str]:
    """What ``--backend`` and ``$BATCH_PREDICT_BACKEND`` accept: every backend, and ``auto``."""
    return [*backend_names(), AUTO]


def engine_names() -> list[str]:
    """The backends that run the bundle on an engine: every one but the reference and legacy."""
    return [name for name in backend_names() if name not in (REFERENCE, LEGACY)]


def bundle_backend_names() -> list[str]:
    """The backends that run the bundle itself: every one but legacy."""
    return [name for name in backend_names() if name != LEGACY]


def declared_backend(name: str) -> Any:
    """The ``BACKEND`` that the module registered for ``name`` (a key of ``BACKENDS``) declares:
    a ``common.run.backends.Backend``; importing it imports no engine."""
    return importlib.import_module(BACKENDS[name]).BACKEND
