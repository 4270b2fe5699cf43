"""The one strict reader (and the one writer) of the TOML tables users write: job sections, bundle,
transforms, faults, parity.

Each table is a declared dataclass, and its annotations say what the table may hold:

- ``str``, ``int``, ``bool``; ``float`` (an integer is accepted and becomes a float);
- ``tuple[X, ...]`` (an array, returned as a tuple); ``Mapping[str, X]`` (a table, as a dict);
- ``Literal["a", "b"]`` (one of fixed values); unions of these (``Literal["auto"] | float``);
- ``Any`` (whatever TOML gives); a field without a default is required.

An optional ``check(where)`` method checks between fields after the types are right. Every error
is one line in one style, naming the file, the table and the field, and listing the valid ones:
``job.toml: [ray]: unknown field "concurency"; valid: address, concurrency, ...``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from common.errors import BatchPredictError, JobError

T = TypeVar("T")


def load_toml(path: Path, error: type[BatchPredictError]) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; a malformed file is ``error`` naming the file."""
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: malformed TOML: {exc}") from None


def parse_table(cls: type[T], table: Any, where: str, error: type[BatchPredictError] = JobError) -> T:
    """Builds the dataclass ``cls`` from a TOML table, strictly.

    Args:
        cls: the declared dataclass of the table.
        table: what TOML gave for it (anything but a table is an error).
        where: the file and table, e.g. ``job.toml: [ray]``; every message starts with it.
        error: the error class to raise (JobError for job files, BundleError for bundles).

    Raises:
        ``error``: an unknown or missing field, a value of the wrong type or outside its
            ``Literal``, or whatever the dataclass's ``check(where)`` finds.
    """
    if not isinstance(table, Mapping):
        raise error(f"{where}: must be a table, got {_toml_type(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [name for name in table if name not in fields]
    if unknown:
        raise error(f'{where}: unknown field "{unknown[0]}"; valid: {", ".join(sorted(fields))}')
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        if name in table:
            values[name] = convert(table[name], hints[name], f'{where}: field "{name}"', error)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise error(f'{where}: missing field "{name}"')
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj


def convert(value: Any, hint: Any, what: str, error: type[BatchPredictError] = JobError) -> Any:
    """``value`` checked against the annotation ``hint`` (see the module docstring) and converted
    (arrays to tuples, integers to floats where a float is wanted); ``what`` names it in errors."""
    result = _convert(value, hint)
    if result is not _MISMATCH and hint is not Any and not _finite(value):
        raise error(f"{what} must be finite, got {value!r}")
    if result is _MISMATCH:
        options = _literals(hint)
        if options is not None and not isinstance(value, (list, dict)):
            valid = ", ".join(str(v) for v in options)
            raise error(f"{what} is {_show(value)}; valid: {valid}")
        raise error(f"{what} must be {describe(hint)}, got {_show(value)}")
    return result


def describe(hint: Any) -> str:
    """What a value of type ``hint`` is, in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "a value"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if origin is tuple:
        return f"a list of {_plural(args[0])}"
    if origin in (Mapping, dict) or hint in (dict, Mapping):
        return "a table"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _convert(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if hint is type(None):
        return _MISMATCH  # TOML has no null: an optional field is absent, never None
    if origin in (Union, types.UnionType):
        for alternative in args:
            result = _convert(value, alternative)
            if result is not _MISMATCH:
                return result
        return _MISMATCH
    if origin is Literal:
        return value if any(value == a and type(value) is type(a) for a in args) else _MISMATCH
    if origin is tuple:
        if not isinstance(value, list):
            return _MISMATCH
        items = [_convert(v, args[0]) for v in value]
        return _MISMATCH if any(i is _MISMATCH for i in items) else tuple(items)
    if origin in (Mapping, dict) or hint in (dict, Mapping):
        if not isinstance(value, dict):
            return _MISMATCH
        if not args:
            return dict(value)
        items = {k: _convert(v, args[1]) for k, v in value.items()}
        return _MISMATCH if any(i is _MISMATCH for i in items.values()) else items
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else _MISMATCH
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if hint in (str, bool):
        return value if type(value) is hint else _MISMATCH
    raise TypeError(f"parse_table cannot read a field declared {hint!r}")  # a bug in a declaration


def _finite(value: Any) -> bool:
    """No float in ``value`` is NaN or infinite (TOML can write them; no setting wants them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _literals(hint: Any) -> tuple | None:
    """The fixed values of a ``Literal`` (alone or as the only alternative in a union with None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return args
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _literals(rest[0])
    return None


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _plural(hint: Any) -> str:
    words = describe(hint)
    for article in ("a ", "an "):
        if words.startswith(article):
            words = words[len(article) :]
    return {"string": "strings", "integer": "integers", "number": "numbers", "table": "tables"}.get(
        words, words
    )


def _toml_type(value: Any) -> str:
    return {list: "an array", dict: "a table", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


# ---- writing: the subset job and bundle files use ---------------------------------------------


def dump_toml(data: Mapping[str, Any]) -> str:
    """The TOML text of the subset that job and bundle files use: scalars (NumPy ones too), arrays,
    tables and arrays of tables. Floats are written exactly (``repr`` round-trips a float64)."""
    lines: list[str] = []
    _emit_table(lines, data, prefix="")
    return "\n".join(lines).strip() + "\n"


def write_toml(path: Path, data: Mapping[str, Any]) -> None:
    """Writes ``data`` to ``path`` as TOML (``dump_toml``): tomllib reads TOML but does not write it."""
    path.write_text(dump_toml(data))


def _emit_table(lines: list[str], table: Mapping[str, Any], prefix: str) -> None:
    nested = {}
    for key, value in table.items():
        if isinstance(value, Mapping) or (
            isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value)
        ):
            nested[key] = value
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested.items():
        name = f"{prefix}{_key(key)}"
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]"]
            _emit_table(lines, value, prefix=f"{name}.")
        else:
            for item in value:
                lines += ["", f"[[{name}]]"]
                _emit_table(lines, item, prefix=f"{name}.")


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "")
    return key if bare.isascii() and bare.isalnum() else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or _is_numpy(value, "integer"):
        return str(int(value))
    if isinstance(value, float) or _is_numpy(value, "floating"):
        return repr(float(value))  # repr round-trips every float64 exactly
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _string(text: str) -> str:
    """A TOML basic string: quote, backslash and the control characters escaped, the rest as is
    (JSON's escapes would split characters beyond the BMP into surrogates, which TOML refuses)."""
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _is_numpy(value: Any, kind: str) -> bool:
    """A NumPy scalar of ``kind`` (``integer``, ``floating``), without importing NumPy here."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, getattr(numpy, kind))


class _Mismatch:
    pass


_MISMATCH = _Mismatch()
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
