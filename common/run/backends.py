"""The contract every executor meets (``Backend``), and the backend of the name a run asks for.

The names and the package serving each are registered in ``common.spec.backends`` (the job file
has one section per backend); a backend package declares an ``EngineBackend`` whose executor
module, the one that imports its engine, is imported only when a job runs on it.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from common.errors import JobError
from common.spec.backends import BACKENDS, choosable_names, declared_backend

if TYPE_CHECKING:
    from common.run.inputs import InputInfo
    from common.run.result import EngineRun
    from common.spec.bundle import Bundle
    from common.spec.job import Job

ENV_VAR = "BATCH_PREDICT_BACKEND"


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


def get_backend(name: str | None) -> Backend:
    """The backend called ``name`` (or ``$BATCH_PREDICT_BACKEND``); JobError lists the valid names."""
    name = name or os.environ.get(ENV_VAR)
    if not name:
        raise JobError(
            f"no backend chosen: pass --backend or set {ENV_VAR}; valid: {', '.join(choosable_names())}"
        )
    if name not in BACKENDS:
        raise JobError(f'unknown backend "{name}"; valid: {", ".join(choosable_names())}')
    return declared_backend(name)
