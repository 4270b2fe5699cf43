"""Backends by name: the contract every executor meets, and the registry that finds them.

``common`` never imports an engine: a backend package's ``__init__`` declares its ``BACKEND``
(name, settings class, executor module) without importing pyspark or ray, and the executor
module is imported only when a job runs. Adding a backend is one package and one entry in
``BACKENDS``; its ``[<name>]`` job-file section, the CLI's ``--backend`` choices and the test
suite's backend parameters all come from here.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from common.errors import JobError

if TYPE_CHECKING:
    from common.run.inputs import InputInfo
    from common.run.result import EngineRun
    from common.spec.bundle import Bundle
    from common.spec.job import Job

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
ENV_VAR = "BATCH_PREDICT_BACKEND"
#: not a backend: ``--backend auto`` picks ray or spark by the job's parity certificate
#: (``common.rollout.certificate.choose_backend``).
AUTO = "auto"


class Backend(Protocol):
    """An executor of jobs.

    Attributes:
        name: the name users give with ``--backend`` and the job file's section name.
        settings_class: the declared dataclass of that section (``common.spec.toml``); it must
            import no engine. A job gets its defaults when the section is absent.
    """

    name: str
    settings_class: type

    def run(self, job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: Any) -> EngineRun:
        """Reads ``inputs.files``, applies the bundle (its transforms, then its model) under the
        job's error policy, and writes Parquet into ``stage`` (a folder it creates). The runner
        has already checked everything; it reconciles and publishes what the engine wrote."""


@dataclass(frozen=True)
class EngineBackend:
    """A backend whose engine code lives in ``executor`` (a module with the ``run`` of
    ``Backend``), imported only when a job runs, so that choosing it costs no engine import.
    ``engine`` names a module whose ``stop()`` ends the engine this process started, if any
    (``common.run.engines.EngineSession`` calls it)."""

    name: str
    settings_class: type
    executor: str
    engine: str = ""

    def run(self, job: Job, bundle: Bundle, inputs: InputInfo, stage: Path, settings: Any) -> EngineRun:
        return importlib.import_module(self.executor).run(job, bundle, inputs, stage, settings)

    def stop(self) -> None:
        """Stops the engine this process started (nothing when no job of this backend ran)."""
        if self.engine and self.executor in sys.modules:
            importlib.import_module(self.engine).stop()


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


def get_backend(name: str | None) -> Backend:
    """The backend called ``name`` (or ``$BATCH_PREDICT_BACKEND``); JobError lists the valid names."""
    name = name or os.environ.get(ENV_VAR)
    if not name:
        raise JobError(
            f"no backend chosen: pass --backend or set {ENV_VAR}; valid: {', '.join(choosable_names())}"
        )
    if name not in BACKENDS:
        raise JobError(f'unknown backend "{name}"; valid: {", ".join(choosable_names())}')
    return importlib.import_module(BACKENDS[name]).BACKEND
