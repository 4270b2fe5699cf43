"""The job file (TOML): what to read, which bundle to apply, where to write, engine settings.

Paths resolve against the job file's folder. Every table is read once, here, by the strict TOML
reader: ``[job]``, ``[input]``, ``[output]``, ``[model]``, one section per registered backend
(each declared by its backend, ``common.spec.backends``), ``[parity]`` and the ``[faults]`` testing
hook. So a bad job fails before any engine starts, with a message naming the file, table and field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from common.errors import JobError
from common.spec.backends import backend_names, declared_backend
from common.spec.bundle import bundle_parity
from common.spec.faults import FaultSpec, parse_faults
from common.spec.parity import ParitySettings, parse_parity_settings, with_defaults
from common.spec.toml import load_toml, parse_table

INPUT_FORMATS = ("parquet", "csv")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_FIXED_SECTIONS = ("job", "input", "output", "model", "parity", "faults")


@dataclass(frozen=True)
class _JobTable:
    key: str | tuple[str, ...]
    name: str = ""
    on_error: Literal["fail", "dead_letter"] = "fail"
    chunk_rows: int | None = None

    def check(self, where: str) -> None:
        keys = (self.key,) if isinstance(self.key, str) else self.key
        if not keys or not all(keys):
            raise JobError(f'{where}: field "key" must be a column name or a list of them')
        if len(set(keys)) != len(keys):
            raise JobError(f'{where}: field "key" lists a column twice')
        if self.chunk_rows is not None and self.chunk_rows < 1:
            raise JobError(f'{where}: field "chunk_rows" must be at least 1, got {self.chunk_rows}')


@dataclass(frozen=True)
class _InputTable:
    path: str
    format: Literal["parquet", "csv"] | None = None
    where: str = ""
    partition_types: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _OutputTable:
    path: str
    passthrough: tuple[str, ...] = ()
    overwrite: bool = False


@dataclass(frozen=True)
class _ModelTable:
    bundle: str


@dataclass(frozen=True)
class Job:
    """A parsed job file.

    Attributes:
        chunk_rows: rows per chunk of a run (``common.run.chunks``); None: about 10 chunks.
        settings: each registered backend's settings (its section, or the defaults), by name.
        parity: the ``[parity]`` tolerances and report options: the job's ``[parity]`` over the
            bundle's ``[parity]`` defaults (``common.spec.parity.with_defaults``).
        faults: the ``[faults]`` testing hook, or None.
        where: ``[input] where``, a Spark SQL predicate over the partition columns choosing the
            files read; partition_types: ``[input.partition_types]`` (``common.run.partitions``).
    """

    path: Path
    name: str
    key: tuple[str, ...]
    input_path: Path
    input_format: str
    output_path: Path
    passthrough: tuple[str, ...]
    bundle_path: Path
    overwrite: bool = False
    where: str = ""
    partition_types: Mapping[str, str] = field(default_factory=dict)
    on_error: str = "fail"
    chunk_rows: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    parity: ParitySettings = ParitySettings()
    faults: FaultSpec | None = None

    @property
    def passthrough_columns(self) -> tuple[str, ...]:
        """The input columns copied to the output: the key first, then the passthrough ones."""
        return self.key + tuple(c for c in self.passthrough if c not in self.key)

    def backend_settings(self, backend: str) -> Any:
        """The settings of ``backend`` (a registered backend's name)."""
        return self.settings[backend]

    def with_settings(self, backend: str, **changes: Any) -> Job:
        """The job with some of ``backend``'s settings changed (checked as the job file's would be)."""
        current = self.settings[backend]
        changed = replace(current, **changes)
        check = getattr(changed, "check", None)
        if check is not None:
            check(f"{self.path}: [{backend}]")
        return replace(self, settings={**self.settings, backend: changed})

    def with_paths(self, input_path: str | Path | None = None, output_path: str | Path | None = None) -> Job:
        """The job with ``--input`` / ``--output`` overrides (relative to the working directory)."""
        job = self
        if input_path is not None:
            path = local_path(str(input_path), Path.cwd(), "--input")
            job = replace(job, input_path=path, input_format=_infer_format(path, None))
        if output_path is not None:
            job = replace(job, output_path=local_path(str(output_path), Path.cwd(), "--output"))
        return job


def load_job(path: str | Path) -> Job:
    """Reads and validates a job file; raises JobError naming the file and field at fault."""
    try:
        file = Path(path).resolve()
        found = file.is_file()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise JobError(f"job file {path}: cannot be read: {exc}") from None
    if not found:
        raise JobError(f"job file {path}: not found")
    return parse_job(load_toml(file, JobError), file)


def parse_job(raw: Mapping[str, Any], file: Path) -> Job:
    """The job in ``raw`` (a job file's tables); ``file`` anchors relative paths and names errors."""
    engines = backend_names()
    valid = sorted({*_FIXED_SECTIONS, *engines})
    unknown = [name for name in raw if name not in valid]
    if unknown:
        raise JobError(f"{file}: unknown section [{unknown[0]}]; valid: {', '.join(valid)}")

    def table(cls, name):
        return parse_table(cls, raw.get(name, {}), f"{file}: [{name}]")

    job_table, input_table = table(_JobTable, "job"), table(_InputTable, "input")
    output_table, model_table = table(_OutputTable, "output"), table(_ModelTable, "model")
    base = file.parent
    input_path = local_path(input_table.path, base, f'{file}: [input] field "path"')
    key = (job_table.key,) if isinstance(job_table.key, str) else job_table.key
    settings = {name: table(declared_backend(name).settings_class, name) for name in engines}
    bundle_path = local_path(model_table.bundle, base, f'{file}: [model] field "bundle"')
    faults = raw.get("faults")
    return Job(
        path=file,
        name=job_table.name or file.parent.name,
        key=key,
        input_path=input_path,
        input_format=_infer_format(input_path, input_table.format),
        output_path=local_path(output_table.path, base, f'{file}: [output] field "path"'),
        passthrough=output_table.passthrough,
        bundle_path=bundle_path,
        overwrite=output_table.overwrite,
        where=input_table.where,
        partition_types=dict(input_table.partition_types),
        on_error=job_table.on_error,
        chunk_rows=job_table.chunk_rows,
        settings=settings,
        parity=parse_parity_settings(with_defaults(bundle_parity(bundle_path), raw.get("parity", {})), file),
        faults=None if faults is None else parse_faults(faults, f"{file}: [faults]", base),
    )


def local_path(text: str, base: Path, where: str) -> Path:
    """``text`` resolved against ``base``. An empty path is refused (it would be ``base`` itself: an
    output there replaced the job's own folder), and so is a URI: ``s3://b/x`` was read as the
    local folder ``s3:/b/x`` and published there with exit 0."""
    if not text.strip():
        raise JobError(f"{where}: is empty; give a file or folder path")
    if _URI.match(text):
        raise JobError(f"{where}: {text!r}: URIs are not supported yet; give a local path")
    return (base / text).resolve()


def _infer_format(path: Path, declared: str | None) -> str:
    if declared is not None:
        return declared
    return "csv" if path.suffix.lower() == ".csv" else "parquet"
