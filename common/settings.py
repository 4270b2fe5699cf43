"""Small helpers for reading an engine's job-file section into a frozen dataclass, strictly."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from common.errors import JobError

T = TypeVar("T")


def parse_section(cls: type[T], section: Mapping[str, Any], where: str) -> T:
    """Builds dataclass ``cls`` from a TOML table: unknown keys and wrong types are JobErrors.

    A field's allowed types come from ``metadata["types"]`` (a tuple), else from its default value.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise JobError(f'{where}: unknown field "{unknown[0]}"; valid: {", ".join(sorted(fields))}')
    values = {}
    for name, value in section.items():
        field = fields[name]
        types = field.metadata.get("types") or (type(field.default),)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise JobError(f'{where}: field "{name}" must be {expected}, got {type(value).__name__}')
        values[name] = value
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj
