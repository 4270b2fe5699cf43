"""Atomic output: write into a staging folder beside the destination, publish by rename.

A failed or killed run leaves the destination untouched; a published output always holds
``_SUCCESS`` and ``_manifest.json``. Row counts are reconciled against the input before publishing.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

from common.errors import OutputError

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"


def check_destination(dest: Path, overwrite: bool) -> None:
    """Fails early when the destination exists (without overwrite) or its parent is not writable."""
    if dest.exists() and not overwrite:
        raise OutputError(f"output {dest}: already exists; pass --overwrite (or output.overwrite = true) to replace it")
    parent = dest.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output {dest}: {parent} is not writable")


@contextmanager
def staged_output(dest: Path, overwrite: bool) -> Iterator[Path]:
    """Yields an empty staging folder; on success it replaces ``dest``, on failure it is removed."""
    check_destination(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.parent / f".{dest.name}.staging-{uuid.uuid4().hex[:12]}"
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if dest.exists():
        trash = dest.parent / f".{dest.name}.replaced-{uuid.uuid4().hex[:12]}"
        os.replace(dest, trash)
        os.replace(stage, dest)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(stage, dest)


def data_files(folder: Path) -> list[Path]:
    """The Parquet data files of an output folder (not markers, manifests or dead letters)."""
    return sorted(
        p for p in folder.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )


def count_rows(folder: Path) -> int:
    return sum(pq.read_metadata(f).num_rows for f in data_files(folder))


def finish_output(stage: Path, manifest: dict[str, Any]) -> None:
    """Writes the manifest and the success marker into the staging folder, last of all."""
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (stage / SUCCESS).write_text("")
