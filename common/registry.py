"""Backends by name. ``common`` never imports an engine: each backend is imported when chosen.

A backend package exposes ``parse_settings(section, where)`` (its own job-file section, checked
without importing the engine) and ``run(job, bundle, options)``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from common.errors import JobError

BACKENDS = {"spark": "spark_backend", "ray": "ray_backend", "reference": "common.reference"}
ENV_VAR = "BATCH_PREDICT_BACKEND"


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def get_backend(name: str | None) -> ModuleType:
    """The backend package for ``name`` (or ``$BATCH_PREDICT_BACKEND``); JobError lists valid names."""
    name = name or os.environ.get(ENV_VAR)
    if not name:
        raise JobError(f"no backend chosen: pass --backend or set {ENV_VAR}; valid: {', '.join(backend_names())}")
    if name not in BACKENDS:
        raise JobError(f'unknown backend "{name}"; valid: {", ".join(backend_names())}')
    return importlib.import_module(BACKENDS[name])


def validate_sections(job) -> None:
    """Each backend checks its own section of the job file; ``[parity]`` is checked by common."""
    for name, module in BACKENDS.items():
        if name in job.sections:
            importlib.import_module(module).parse_settings(job.section(name), f"{job.path}: [{name}]")
    from common.parity_settings import parse_parity_settings

    parse_parity_settings(job.section("parity"), f"{job.path}: [parity]")
