"""SIGTERM and Ctrl-C as exceptions in the main thread, held back while an engine starts.

The CLI turns SIGTERM into ``Terminated`` and SIGINT into ``KeyboardInterrupt`` (``stop_on_signals``)
so that ``finally`` blocks remove the staging folder and stop the engines; it exits 143 or 130
with one line. An engine's start cannot be cut in half safely: ``ray.init`` swaps in a handler
that calls ``sys.exit`` (exit 15, no line), pyspark installs a SIGINT handler that calls into the
JVM mid-call (py4j's "reentrant call" traceback), and a start stopped halfway leaves processes
that nothing records. So ``engine_starting`` holds a signal back until the start has finished and
the engine is recorded as this process's, puts our handlers back, then raises it; ``stop`` then
stops that engine like any other.

Only the standard library is imported here: the CLI installs these handlers first thing, before
it imports anything heavy, so that a SIGTERM half a second after launch still exits 143.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks and ``close`` run."""

    exit_code = 128 + signal.SIGTERM


_held = 0  # depth of engine_starting / signals_held blocks: > 0 holds signals back
_received: list[int] = []  # signals received while our handlers were installed, first first


def _exception(signum: int) -> BaseException:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handle(signum, frame) -> None:
    _received.append(signum)
    if not _held:
        raise _exception(signum)


def raise_if_signalled() -> None:
    """Raises the first signal received, if any: a check before a step that cannot be undone
    (publishing), as a library may have swallowed the exception (a bare ``except:`` around an
    optional import) at the moment the signal came."""
    if _received and not _held:
        raise _exception(_received[0])


def _install() -> None:
    for signum in SIGNALS:
        signal.signal(signum, _handle)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM raises ``Terminated`` and SIGINT ``KeyboardInterrupt`` while the block runs; the
    previous handlers come back afterwards."""
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _install()
    try:
        yield
    finally:
        _received.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def engine_starting():
    """Holds SIGTERM and SIGINT back while an engine starts (record it as started inside the
    block), restores our handlers over whatever the engine installed, then raises the first
    signal that came meanwhile. Off the main thread, or outside ``stop_on_signals``, it only
    restores the handlers."""
    global _held
    if not _on_main_thread():
        yield
        return
    ours = signal.getsignal(signal.SIGTERM) is _handle
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
    if ours:
        raise_if_signalled()


@contextlib.contextmanager
def signals_held():
    """Holds SIGTERM and SIGINT back for the block (stopping engines: a second SIGTERM from a
    scheduler must not cut the stop short); the process is on its way out already."""
    global _held
    if not _on_main_thread():
        yield
        return
    _held += 1
    try:
        yield
    finally:
        _held -= 1


def signalled() -> BaseException | None:
    """The exception of the first signal since ``stop_on_signals`` began (even one whose exception
    a library swallowed), or None."""
    return _exception(_received[0]) if _received else None
