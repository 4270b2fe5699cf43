"""Progress of a long run on stderr, so stdout keeps only the summary line.

On a terminal a ``tqdm`` bar shows rows done out of the total, rows/s and the ETA (it appears
after a second, so short runs show nothing). Elsewhere (a log file, CI) a plain line is printed
every ``PLAIN_INTERVAL`` seconds. ``--quiet`` turns both off. Rows done are the rows of committed
chunks (``common.run.chunks``) plus the rows in the finished Parquet files the engine has written
so far for the running chunk (their footers, read on the driver: no engine hook, the same for
Spark and Ray; a file still being written has no footer yet and waits for the next look).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.parquet as pq

PLAIN_INTERVAL = 10.0
BAR_REFRESH = 1.0


class Progress:
    """Reports ``advance``d rows against ``total`` until closed (use as a context manager).

    Args:
        total: rows the run will process.
        label: what runs, e.g. the backend name; starts every line.
        stream: where to write (stderr by default).
        enabled: False writes nothing (``--quiet``).
        interval: seconds between plain lines; default ``PLAIN_INTERVAL``.
        terminal: force the bar (True) or plain lines (False); default: whether ``stream`` is a TTY.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        interval: float | None = None,
        terminal: bool | None = None,
    ):
        self.total, self.label, self.done = total, label, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.terminal = _isatty(self.stream) if terminal is None else terminal
        self.interval = (BAR_REFRESH if self.terminal else PLAIN_INTERVAL) if interval is None else interval
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = None
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self._file_rows: dict[str, int] = {}

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        if self.terminal:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                desc=self.label,
                unit="rows",
                unit_scale=True,
                file=self.stream,
                delay=BAR_REFRESH,
                leave=False,
                dynamic_ncols=True,
            )
        self._thread = threading.Thread(target=self._tick, name="batch-predict-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, rows: int) -> None:
        """Counts ``rows`` more as done (a committed chunk's)."""
        with self._lock:
            self.done += rows
            self._folder = None
            self._show()

    def watch(self, folder: Path | None) -> None:
        """Counts the rows of the Parquet files appearing under ``folder`` (the running chunk's)."""
        with self._lock:
            self._folder = folder

    def rows_done(self) -> int:
        return min(self.total, self.done + self._partial_rows())

    def _partial_rows(self) -> int:
        folder = self._folder
        if folder is None:
            return 0
        rows = 0
        for file in list(folder.rglob("*.parquet")):
            name = str(file)
            if name not in self._file_rows:
                try:
                    self._file_rows[name] = pq.read_metadata(file).num_rows
                except (OSError, pa.ArrowException):  # still being written, or moved meanwhile
                    continue
            rows += self._file_rows[name]
        return rows

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.n = self.rows_done()
            self._bar.refresh()

    def line(self) -> str:
        """``ray: 3,000 of 10,000 rows (30%), 1,234 rows/s, ETA 6 s, 2 s elapsed``."""
        elapsed = time.monotonic() - self.started
        done = self.rows_done()
        rate = done / elapsed if elapsed > 0 else 0.0
        share = f" ({done / self.total:.0%})" if self.total else ""
        eta = f"ETA {_duration((self.total - done) / rate)}" if rate > 0 else "ETA unknown"
        return (
            f"{self.label}: {done:,} of {self.total:,} rows{share}, {rate:,.0f} rows/s, {eta}, "
            f"{_duration(elapsed)} elapsed"
        )

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._bar is not None:
                    self._show()
                else:
                    print(f"progress: {self.line()}", file=self.stream, flush=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
