"""The job file (TOML): what to read, which bundle to apply, where to write, engine settings.

Paths resolve against the job file's folder. The ``[spark]`` and ``[ray]`` sections belong to their
executors: each backend validates its own section (``common.registry``), and this module validates
everything else, so a bad job fails before any engine starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from common.errors import JobError

ON_ERROR = ("fail", "dead_letter")
INPUT_FORMATS = ("parquet", "csv")
_SECTIONS = {
    "job": {"key", "name", "on_error"},
    "input": {"path", "format"},
    "output": {"path", "passthrough", "overwrite"},
    "model": {"bundle"},
}
_ENGINE_SECTIONS = ("spark", "ray", "parity", "faults")  # faults: a testing hook, see common.faults


@dataclass(frozen=True)
class Job:
    """A parsed job file. ``sections`` holds the raw engine sections (``spark``, ``ray``, ``parity``)."""

    path: Path
    name: str
    key: tuple[str, ...]
    input_path: Path
    input_format: str
    output_path: Path
    passthrough: tuple[str, ...]
    bundle_path: Path
    overwrite: bool = False
    on_error: str = "fail"
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The input columns copied to the output: the key first, then the passthrough ones."""
        return self.key + tuple(c for c in self.passthrough if c not in self.key)

    def section(self, name: str) -> Mapping[str, Any]:
        return self.sections.get(name, {})

    def with_paths(self, input_path: str | Path | None = None, output_path: str | Path | None = None) -> "Job":
        """The job with ``--input`` / ``--output`` overrides (relative to the working directory)."""
        job = self
        if input_path is not None:
            job = replace(job, input_path=Path(input_path).resolve(), input_format=_infer_format(Path(input_path), None, "--input"))
        if output_path is not None:
            job = replace(job, output_path=Path(output_path).resolve())
        return job


def load_job(path: str | Path) -> Job:
    """Reads and validates a job file; raises JobError naming the file and field at fault."""
    file = Path(path).resolve()
    if not file.is_file():
        raise JobError(f"job file {path}: not found")
    try:
        raw = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JobError(f"{file}: malformed TOML: {exc}") from None
    return parse_job(raw, file)


def parse_job(raw: Mapping[str, Any], file: Path) -> Job:
    where = str(file)
    unknown = sorted(set(raw) - set(_SECTIONS) - set(_ENGINE_SECTIONS))
    if unknown:
        raise JobError(f'{where}: unknown section [{unknown[0]}]; valid: {", ".join(sorted([*_SECTIONS, *_ENGINE_SECTIONS]))}')
    for section, fields in _SECTIONS.items():
        value = raw.get(section, {})
        if not isinstance(value, dict):
            raise JobError(f"{where}: [{section}] must be a table")
        extra = sorted(set(value) - fields)
        if extra:
            raise JobError(f'{where}: unknown field "{section}.{extra[0]}"; valid: {", ".join(sorted(fields))}')
    base = file.parent

    key = _get(raw, "job", "key", (str, list), where)
    key = (key,) if isinstance(key, str) else tuple(key)
    if not key or not all(isinstance(k, str) and k for k in key):
        raise JobError(f"{where}: job.key must be a column name or a list of them")
    on_error = raw.get("job", {}).get("on_error", "fail")
    if on_error not in ON_ERROR:
        raise JobError(f'{where}: job.on_error "{on_error}" is not one of {", ".join(ON_ERROR)}')

    input_path = base / _get(raw, "input", "path", str, where)
    input_format = _infer_format(input_path, raw["input"].get("format"), f"{where}: input.format")
    output_path = base / _get(raw, "output", "path", str, where)
    passthrough = raw["output"].get("passthrough", [])
    if not isinstance(passthrough, list) or not all(isinstance(c, str) for c in passthrough):
        raise JobError(f"{where}: output.passthrough must be a list of column names")
    overwrite = raw["output"].get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise JobError(f"{where}: output.overwrite must be true or false")
    bundle_path = base / _get(raw, "model", "bundle", str, where)

    sections = {}
    for name in _ENGINE_SECTIONS:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise JobError(f"{where}: [{name}] must be a table")
        sections[name] = value
    job = Job(
        path=file, name=str(raw.get("job", {}).get("name", file.parent.name)), key=key,
        input_path=input_path.resolve(), input_format=input_format, output_path=output_path.resolve(),
        passthrough=tuple(passthrough), bundle_path=bundle_path.resolve(), overwrite=overwrite,
        on_error=on_error, sections=sections,
    )
    from common.registry import validate_sections  # late: the registry imports backend settings

    validate_sections(job)
    from common.faults import parse_faults

    parse_faults(job.section("faults"), f"{where}: [faults]")
    return job


def _get(raw: Mapping[str, Any], section: str, name: str, typ, where: str) -> Any:
    value = raw.get(section, {}).get(name)
    if value is None:
        raise JobError(f'{where}: missing field "{section}.{name}"')
    if not isinstance(value, typ):
        raise JobError(f'{where}: field "{section}.{name}" has the wrong type ({type(value).__name__})')
    return value


def _infer_format(path: Path, declared: str | None, where: str) -> str:
    if declared is not None:
        if declared not in INPUT_FORMATS:
            raise JobError(f'{where}: "{declared}" is not one of {", ".join(INPUT_FORMATS)}')
        return declared
    return "csv" if path.suffix.lower() == ".csv" else "parquet"
