"""Spark's ANSI runtime errors in a sql transform -> the same one line the compiled side prints.

Spark raises them from inside the job (``SparkArithmeticException`` and friends, wrapped by
Py4J); the error carries its class (``getCondition``) and the SQL fragment that failed, which
names the transform. No pyspark import: the exception is read by duck typing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from common.sql.errors import ERROR_CLASSES, runtime_error_line

ANSI_CLASSES = set(ERROR_CLASSES[1:]) | {"INVALID_INDEX_OF_ZERO", "NUMERIC_VALUE_OUT_OF_RANGE"}


def ansi_error_class(error: BaseException) -> str | None:
    """Spark's error class when ``error`` (or its message) is an ANSI runtime error, else None."""
    condition = (getattr(error, "getCondition", lambda: None)() or "").split(".")[0]
    if condition in ANSI_CLASSES:
        return condition
    # a failed job wraps the task's error: the first ANSI class named anywhere in the message
    for name in re.findall(r"\[([A-Z_]+)(?:\.[A-Z_]+)?\]", str(error)):
        if name in ANSI_CLASSES:
            return name
    return None


def sql_error_line(error: BaseException, transforms: Iterable[tuple[str, str]]) -> str | None:
    """The one line for a Spark ANSI error in one of ``transforms`` ((output, expr) pairs), or None
    when ``error`` is no such error. The failing fragment picks the transform; the first sql
    transform is named when Spark gave no fragment."""
    error_class = ansi_error_class(error)
    transforms = list(transforms)
    if error_class is None or not transforms:
        return None
    fragment = _fragment(error, str(error))
    chosen = transforms[0]
    if fragment:
        wanted = re.sub(r"\s+", "", fragment).lower()
        for output, expr in transforms:
            if wanted and wanted in re.sub(r"\s+", "", expr).lower():
                chosen = (output, expr)
                break
    return runtime_error_line(chosen[0], chosen[1], error_class)


def _fragment(error: BaseException, text: str) -> str | None:
    contexts = getattr(error, "getQueryContext", lambda: [])() or []
    for context in contexts:
        fragment = getattr(context, "fragment", lambda: None)()
        if fragment:
            return fragment
    # the message shows it under "== SQL (line 1, position 2) ==" with ^^^ marks below it
    match = re.search(r"== SQL[^\n]*==\n([^\n]*)\n(\s*)(\^+)", text)
    if match:
        line, start, width = match.group(1), len(match.group(2)), len(match.group(3))
        return line[start : start + width]
    return None
