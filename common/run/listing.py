"""Which files under a folder are data: one walk, and every entry either classified or refused.

The rule (Spark's, ``HadoopFSUtils.shouldFilterOutPathName``): a name that starts with ``.``, or
with ``_`` and holds no ``=`` (``_SUCCESS``, ``_temporary``, ``_manifest.json``, ``_dead_letter``;
a partition folder ``_k=v`` is data), or ends in ``._COPYING_``, is not data and is not looked at.
Everything else must be a regular file or a folder. ``Path.rglob`` skipped the rest without a word,
so reconciliation counted only what it found (issue 22, D6); here each of these is refused, naming it:

- a folder that cannot be listed (permissions);
- a link whose target does not exist;
- a FIFO, socket or device;
- a link to a folder that holds the link (a loop).

A link to a file is that file. A link to a folder is followed, as Spark (Hadoop's local file
system) follows it, so both engines and the reference read the same files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from common.errors import InputError


def is_hidden(name: str) -> bool:
    """Not data by its name alone: markers, manifests, staging, checksums, in-progress copies."""
    return name.startswith(".") or (name.startswith("_") and "=" not in name) or name.endswith("._COPYING_")


def data_files(folder: Path, suffix: str | None = None) -> list[Path]:
    """The data files under ``folder``, sorted, as paths under it (links not resolved); with
    ``suffix``, only files ending in it. Raises InputError for an entry it cannot classify."""
    found: list[Path] = []
    _walk(Path(folder), suffix, found, (os.path.realpath(folder),))
    return sorted(found)


def _walk(folder: Path, suffix: str | None, found: list[Path], above: tuple[str, ...]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"input folder {folder}: cannot be listed ({exc.strerror or exc})") from None
    for entry in entries:
        if is_hidden(entry.name):
            continue
        path = Path(entry.path)
        try:
            mode = os.stat(path).st_mode  # follows links
        except FileNotFoundError:
            target = os.readlink(path) if entry.is_symlink() else "?"
            raise InputError(f"input {path}: a link to {target}, which does not exist") from None
        except OSError as exc:
            raise InputError(f"input {path}: cannot be read ({exc.strerror or exc})") from None
        if stat.S_ISDIR(mode):
            real = os.path.realpath(path)
            if real in above:
                raise InputError(f"input {path}: a link to {real}, a folder that holds it (a loop)")
            _walk(path, suffix, found, (*above, real))
        elif stat.S_ISREG(mode):
            if suffix is None or entry.name.endswith(suffix):
                found.append(path)
        else:
            raise InputError(f"input {path}: {_kind(mode)}, not a file or folder")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device")):
        if test(mode):
            return name
    return "a special file"


def check_input_root(path: Path) -> None:
    """The input itself: a file or a folder, else one line saying what it is."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"input {path}: no such file or folder") from None
    except OSError as exc:
        raise InputError(f"input {path}: cannot be read ({exc.strerror or exc})") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise InputError(f"input {path}: {_kind(mode)}, not a file or folder")
