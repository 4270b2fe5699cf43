"""The compiler's two errors: a refused expression (at bundle load) and an ANSI runtime error."""

from __future__ import annotations

from common.errors import BatchPredictError, BundleError

# Spark's error classes for the runtime errors the compiled side raises, by code (0 = no error).
ERROR_CLASSES = (
    "",
    "DIVIDE_BY_ZERO",
    "REMAINDER_BY_ZERO",
    "ARITHMETIC_OVERFLOW",
    "CAST_INVALID_INPUT",
    "CAST_OVERFLOW",
)
ERROR_CODE = {name: code for code, name in enumerate(ERROR_CLASSES) if name}


class SqlCompileError(BundleError):
    """The expression cannot be compiled: a syntax error, an unsupported or non-deterministic
    function, a type Spark would not accept, a decimal result, or a regex outside the common subset."""


class SqlRuntimeError(BatchPredictError):
    """An ANSI-mode error while evaluating (Spark fails the query on the same row).

    Attributes:
        error_class: Spark's error class, e.g. ``DIVIDE_BY_ZERO``.
    """

    def __init__(self, message: str, error_class: str = ""):
        super().__init__(message)
        self.error_class = error_class

    def __reduce__(self):  # crosses process boundaries (Ray, Spark workers) with its class intact
        return (type(self), (self.args[0], self.error_class))


def runtime_error_line(output: str | None, expr: str, error_class: str) -> str:
    """The one line every backend prints for an ANSI error in a sql expression: the transform's
    output (when the expression runs as one), the expression and Spark's error class."""
    where = f'sql transform "{output}"' if output is not None else "sql expression"
    return (
        f"{where} failed under ANSI mode: [{error_class}] in `{expr}` "
        "(sql_ansi = false in bundle.toml gives Spark 3 semantics: null or wrapped values instead)"
    )
