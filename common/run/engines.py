"""The engines one process uses for a sequence of jobs: each started once, all stopped at the end.

``batch-predict run JOB [JOB ...]`` (and ``parity``) run every job inside one ``EngineSession``:
an engine starts when its first job needs it, later jobs reuse it, and ``close()`` stops what
this process started (the driver JVM and its Python workers; Ray's raylet, GCS and workers),
within seconds, on success, error, Ctrl-C or SIGTERM (``common.run.signals``). An engine this
process only connected to (``[ray] address``, ``[spark] remote``, a cluster master) keeps running.
Callers that run one chunk of a job at a time (resumable runs) pass the same session to each
``run_job`` call.
"""

from __future__ import annotations

import sys

from common.run.backends import Backend, get_backend
from common.run.signals import Terminated, signals_held, stop_on_signals
from common.spec.backends import engine_names

__all__ = ["EngineSession", "Terminated", "stop_on_signals"]


class EngineSession:
    """Backends whose engine may have been started in this process, to be stopped by ``close``."""

    def __init__(self):
        self._used: dict[str, Backend] = {}

    def backend(self, name: str | None) -> Backend:
        """The backend called ``name``, remembered so that ``close`` stops its engine."""
        backend = get_backend(name)
        self._used.setdefault(backend.name, backend)
        return backend

    def close(self) -> None:
        """Stops every engine this process started (also those that jobs run without this session
        started, such as a fleet's parity runs), last used first; errors do not stop the rest."""
        failures = []
        for name in engine_names():
            self._used.setdefault(name, get_backend(name))
        with signals_held():  # a scheduler's second SIGTERM must not cut the stop short
            for backend in reversed(list(self._used.values())):
                stop = getattr(backend, "stop", None)
                if stop is None:
                    continue
                try:
                    stop()
                except Exception as exc:  # still stop the others; report the first
                    failures.append(f"{backend.name}: {exc}")
        self._used.clear()
        if failures:
            print(f"batch-predict: warning: stopping an engine failed: {failures[0]}", file=sys.stderr)

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
