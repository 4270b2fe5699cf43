"""Errors that reach the user as one line and exit code 2.

Every check on user input (job file, bundle, input data, output path) raises a subclass of
``BatchPredictError`` whose message names the file, column or field at fault. The CLI prints the
message on one line and exits with ``EXIT_ERROR``; nothing is published.
"""

from __future__ import annotations

from collections.abc import Iterator

EXIT_OK = 0
EXIT_PARITY_FAILED = 1
EXIT_ERROR = 2


class BatchPredictError(Exception):
    """A problem with the user's input, reported as one line naming the thing at fault."""

    def __str__(self) -> str:  # keep the message on one line whatever the cause carried
        return " ".join(super().__str__().split())


class JobError(BatchPredictError):
    """The job file is missing, malformed or names something that does not exist."""


class BundleError(BatchPredictError):
    """The model bundle is missing, malformed, or its model misbehaves."""


class InputError(BatchPredictError):
    """The input data is missing, unreadable or does not fit the bundle."""


class OutputError(BatchPredictError):
    """The output destination exists, is not writable, or the run's output failed a check."""


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it carries, each once: its ``__cause__`` and ``__context__``, and
    an engine's ``cause`` attribute (Ray's ``RayTaskError`` keeps the worker's exception there)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "cause", None), current.__cause__, current.__context__]
