"""Output paths that would destroy the input or the bundle are refused before anything starts.

Publishing replaces the output folder (``--overwrite``) and a run removes stale staging folders
beside it, so an output that holds the input, or the bundle, deletes it. This was a real data loss:
``run job.toml --output data --overwrite`` with input ``data/input.parquet`` published the output
and deleted the input. Spark refuses to overwrite a path it is reading from; so do we, on the
driver, before any folder is created or any engine starts.

Paths are compared after resolving symbolic links both ways: the output's own links, and each
input and bundle file's, so an input file reached through a link into the output folder is found.
The job file counts too: an output equal to the job's folder deleted ``job.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from common.errors import OutputError


def check_output_paths(output: Path, input_path: Path, bundle: Path, job_file: Path | None = None) -> None:
    """Raises OutputError when ``output`` overlaps the input or the bundle folder.

    Refused: an output equal to the input; an output that contains the input; an output inside
    an input folder (the next run would read it back as input); an output equal to, inside or
    containing the bundle folder. Symbolic links are followed, so a link to the input is the input.
    An output beside an input file (``data/in.parquet`` and ``data/out``) is fine.
    """
    out, source, model = (Path(p).resolve() for p in (output, input_path, bundle))
    if out == source:
        raise OutputError(f"output {output}: is the input; choose another output folder")
    if source.is_relative_to(out):
        raise OutputError(f"output {output}: contains the input {input_path}; publishing would delete it")
    if source.is_dir() and out.is_relative_to(source):
        raise OutputError(
            f"output {output}: lies inside the input folder {input_path}; the next run would read it as input"
        )
    if out == model or model.is_relative_to(out):
        raise OutputError(f"output {output}: contains the model bundle {bundle}; publishing would delete it")
    if out.is_relative_to(model):
        raise OutputError(f"output {output}: lies inside the model bundle folder {bundle}")
    if job_file is not None and Path(job_file).resolve().is_relative_to(out):
        raise OutputError(f"output {output}: contains the job file {job_file}; publishing would delete it")


def check_output_spares(output: Path, files: Iterable[Path], what: str) -> None:
    """Raises OutputError when a file the job reads (``what``: "input file", "bundle file") lies in
    ``output`` once symbolic links are resolved: publishing replaces the folder and deletes it."""
    out = Path(output).resolve()
    for file in files:
        real = Path(file).resolve()
        if real == out or real.is_relative_to(out):
            via = "" if real == Path(file).absolute() else f" (through the link {file})"
            raise OutputError(f"output {output}: holds the {what} {real}{via}; publishing would delete it")
