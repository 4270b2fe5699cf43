"""Atomic output: write into a staging folder beside the destination, publish by rename.

A failed or killed run leaves the destination untouched; a published output always holds
``_SUCCESS`` and ``_manifest.json``. Row counts are reconciled against the input before publishing.

Staging folders are named ``.<dest>.staging-<host>-<pid>-<id>``: a run removes the ones left by
killed runs on this host (their process is gone) before it starts, and nothing ever reads them.
Replacing an existing output swaps the two folders in one ``renameat2(RENAME_EXCHANGE)`` where the
file system supports it, so even a kill at that instant leaves a complete old or new output.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.errors import OutputError
from common.run.listing import data_files

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"


_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def check_destination(dest: Path, overwrite: bool) -> None:
    """Fails early when the destination exists (without overwrite, or when it is not an output of
    this harness) or its parent is not writable."""
    if dest.exists() and not overwrite:
        raise OutputError(
            f"output {dest}: already exists; pass --overwrite (or output.overwrite = true) to replace it"
        )
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"output {dest}: is a file; the output is a folder")
    if dest.exists():
        stranger = foreign_file(dest)
        if stranger is not None:
            raise OutputError(
                f"output {dest}: is not an output of this harness ({stranger} is not ours); "
                "--overwrite replaces only a previous output; choose another folder"
            )
    parent = dest.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"output {dest}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output {dest}: {parent} is not writable")


def foreign_file(folder: Path) -> Path | None:
    """A file in an existing ``folder`` that no run of this harness wrote, or None. Ours is a folder
    whose ``_manifest.json`` lists every file in it (a manifest without a list, from before the list
    was kept, vouches for the whole folder); an empty folder has nothing to lose."""
    entries = sorted(p for p in folder.rglob("*") if not p.is_dir())
    known: set[str] = set()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict) and "rows_out" in manifest:
        if not isinstance(manifest.get("files"), list):
            return None
        known = {*manifest["files"], MANIFEST, SUCCESS}
    return next((p for p in entries if p.relative_to(folder).as_posix() not in known), None)


def scratch_dir(stage: Path) -> Path:
    """A run's scratch folder beside its staging folder (fault markers); removed with it."""
    return stage.with_name(stage.name + ".scratch")


@contextmanager
def staged_output(dest: Path, overwrite: bool, adopt: Path | None = None) -> Iterator[Path]:
    """Yields a staging folder path (not yet created); on success it replaces ``dest``, on failure
    it and the run's scratch folder are removed and ``dest`` is untouched.

    Args:
        adopt: a staging folder a killed run left (``--resume``): it becomes this run's staging
            folder, with what it holds, instead of being removed as stale.
    """
    check_destination(dest, overwrite)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"output {dest}: cannot create {dest.parent}: {exc.strerror or exc}") from None
    try:  # proves the folder writable where os.access cannot tell (root, read-only mounts, /proc)
        probe = dest.parent / f".{dest.name}.probe-{uuid.uuid4().hex[:12]}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputError(f"output {dest}: {dest.parent} is not writable: {exc.strerror or exc}") from None
    stage = dest.parent / f".{dest.name}.staging-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    if adopt is not None:
        os.rename(adopt, stage)
        shutil.rmtree(scratch_dir(adopt), ignore_errors=True)
    remove_stale_staging(dest)
    try:
        yield stage
        if dest.exists():
            _publish_over(stage, dest)
        else:
            os.rename(stage, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # a failed run's output, or the replaced one
        shutil.rmtree(scratch_dir(stage), ignore_errors=True)


def remove_stale_staging(dest: Path) -> list[Path]:
    """Removes staging folders of ``dest`` left by killed runs on this host; returns them.

    A folder whose process is alive (a concurrent run) or that was made on another host is kept.
    """
    removed = list(_dead_runs_folders(dest))
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def stale_staging(dest: Path) -> list[Path]:
    """The staging folders (not their scratch folders) of ``dest`` left by killed runs on this host."""
    return [p for p in _dead_runs_folders(dest) if p.is_dir() and not p.name.endswith(".scratch")]


def _dead_runs_folders(dest: Path) -> Iterator[Path]:
    for path in dest.parent.glob(f".{dest.name}.staging-*"):
        host, _, rest = path.name[len(f".{dest.name}.staging-") :].partition("-")
        pid = rest.partition("-")[0]
        if host == _HOST and pid.isdigit() and not _alive(int(pid)):
            yield path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _publish_over(stage: Path, dest: Path) -> None:
    """Swaps ``stage`` and an existing ``dest`` atomically where the kernel can; the old output
    ends up at ``stage`` (removed by the caller)."""
    if _exchange(stage, dest):
        return
    old = stage.with_name(stage.name + ".old")  # two renames: a kill between them leaves dest absent
    os.rename(dest, old)
    os.rename(stage, dest)
    os.rename(old, stage)


def _exchange(a: Path, b: Path) -> bool:
    """``renameat2(a, b, RENAME_EXCHANGE)``; False where the C library or file system lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def output_files(folder: Path) -> list[Path]:
    """The Parquet data files of an output folder (not markers, manifests or dead letters)."""
    return data_files(folder, ".parquet")


def finish_output(stage: Path, manifest: dict[str, Any]) -> None:
    """Writes the manifest (with the list of the folder's files: ``foreign_file``) and the success
    marker into the staging folder, last of all."""
    files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if not p.is_dir())
    manifest = {**manifest, "files": files}
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (stage / SUCCESS).write_text("")
