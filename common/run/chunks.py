"""Resumable runs: the input cut into chunks, each committed into the staging folder when done.

A chunk is a list of whole input files, or of row groups of a Parquet file bigger than
``[job] chunk_rows``. By default a run has about ``DEFAULT_CHUNKS`` chunks of whole files (one per
file when there are fewer), each of at least ``DEFAULT_MIN_CHUNK_ROWS`` rows. The engine writes a
chunk into a hidden folder of the staging folder; the runner then moves its data files to the
staging folder's top as ``chunk-00003-<file>`` and records the chunk as done in ``_chunks.json``
(written to a temporary file and renamed, so it is always whole). A driver killed with SIGKILL
leaves that staging folder; ``run --resume`` adopts it, removes what the unfinished chunk left,
and runs only the chunks not yet done. The manifest also records what the run was made from
(backend, job settings, bundle, input files), and a resume refuses when any of it changed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from common.errors import JobError
from common.spec.identity import changed_settings, result_settings, settings_hash

CHUNKS_FILE = "_chunks.json"
DEFAULT_CHUNKS = 10
DEFAULT_MIN_CHUNK_ROWS = 1_000_000
FORMAT = 1


@dataclass(frozen=True)
class ChunkPart:
    """A whole input file (``row_groups`` None) or some of its row groups."""

    file: str
    rows: int
    row_groups: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "row_groups": None if self.row_groups is None else list(self.row_groups),
        }


@dataclass(frozen=True)
class Chunk:
    """One unit of commit: the parts of the input it reads, in input order."""

    index: int
    parts: tuple[ChunkPart, ...]

    @property
    def name(self) -> str:
        return f"chunk-{self.index:05d}"

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def row_groups(self) -> dict[str, tuple[int, ...]]:
        """Files read in part: file -> the row groups to read (whole files are absent)."""
        return {p.file: p.row_groups for p in self.parts if p.row_groups is not None}

    def inputs(self, info):
        """The run's InputInfo narrowed to this chunk's files, rows and row groups."""
        return replace(
            info,
            files=tuple(Path(p.file) for p in self.parts),
            num_rows=self.rows,
            row_groups=self.row_groups() or None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "parts": [p.to_dict() for p in self.parts]}


def plan_chunks(
    files: Sequence[Path], fmt: str, chunk_rows: int | None = None, min_rows: int = DEFAULT_MIN_CHUNK_ROWS
) -> list[Chunk]:
    """Cuts the input into chunks, in file order (deterministic: a resume plans the same chunks).

    Without ``chunk_rows``: whole files packed into about ``DEFAULT_CHUNKS`` chunks, so one chunk
    per file when there are fewer files, but never chunks under ``min_rows`` rows: each chunk is
    one engine job (Ray starts its model replicas again for each), which a small run would pay
    for nothing. With ``chunk_rows``: files packed up to that many rows, and a Parquet file bigger
    than that cut at row-group boundaries (a row group is never split, so a chunk holds more rows
    when one row group does). A CSV file is always whole.
    """
    counts = [_row_groups(Path(f), fmt) for f in files]
    if chunk_rows is None:
        target = max(1, min_rows, math.ceil(sum(map(sum, counts)) / DEFAULT_CHUNKS))
        units = [ChunkPart(str(f), sum(c)) for f, c in zip(files, counts, strict=True)]
    else:
        target, units = chunk_rows, []
        for f, groups in zip(files, counts, strict=True):
            if sum(groups) <= chunk_rows or fmt != "parquet" or len(groups) < 2:
                units.append(ChunkPart(str(f), sum(groups)))
                continue
            start = 0
            while start < len(groups):  # consecutive row groups up to chunk_rows (at least one)
                end, rows = start + 1, groups[start]
                while end < len(groups) and rows + groups[end] <= chunk_rows:
                    rows, end = rows + groups[end], end + 1
                units.append(ChunkPart(str(f), rows, tuple(range(start, end))))
                start = end
    chunks, current = [], []
    for unit in units:
        if current and sum(u.rows for u in current) + unit.rows > target:
            chunks.append(Chunk(len(chunks), tuple(current)))
            current = []
        current.append(unit)
    if current or not chunks:
        chunks.append(Chunk(len(chunks), tuple(current)))
    return chunks


def _row_groups(file: Path, fmt: str) -> list[int]:
    """Rows per row group of a Parquet file; a CSV file counts as one group."""
    if fmt == "parquet":
        meta = pq.read_metadata(file)
        return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] or [0]
    import pyarrow.csv as pacsv

    return [pacsv.read_csv(file).num_rows]


def input_fingerprint(input_path: Path, files: Sequence[Path]) -> dict[str, Any]:
    """What identifies the input without reading it: each file's name, size and modification time."""
    stats = {}
    for f in files:
        st = Path(f).stat()
        stats[str(f)] = [st.st_size, st.st_mtime_ns]
    return {"path": str(input_path), "files": stats}


def describe_change(staged: dict[str, Any], current: dict[str, Any]) -> str | None:
    """What differs between the run identity a staging folder was made with and the current one,
    in words, or None when the staged run can be resumed."""
    if staged.get("backend") != current["backend"]:
        return f"the backend changed ({staged.get('backend')} -> {current['backend']})"
    if staged.get("bundle_hash") != current["bundle_hash"]:
        return (
            f"the bundle changed ({str(staged.get('bundle_hash'))[:6]} -> {current['bundle_hash'][:6]}, "
            f"{current['bundle']})"
        )
    if staged.get("settings_hash") != current["settings_hash"]:
        names = changed_settings(staged.get("settings") or {}, current["settings"])
        return f"the job changed ({', '.join(names) or 'its settings'})"
    old, new = staged.get("input") or {}, current["input"]
    if old.get("path") != new["path"]:
        return f"the input changed ({old.get('path')} -> {new['path']})"
    old_files, new_files = old.get("files") or {}, new["files"]
    for name in sorted(set(old_files) | set(new_files)):
        if name not in new_files:
            return f"the input changed ({name} is gone)"
        if name not in old_files:
            return f"the input changed ({name} is new)"
        if list(old_files[name]) != list(new_files[name]):
            return f"the input changed ({name} was modified)"
    if staged.get("chunk_rows") != current["chunk_rows"]:
        return f"the job changed (chunk_rows {staged.get('chunk_rows')} -> {current['chunk_rows']})"
    return None


class ChunkManifest:
    """``_chunks.json`` of a staging folder: the run identity, the chunk plan and the chunks done."""

    def __init__(
        self, stage: Path, identity: dict[str, Any], chunks: list[Chunk], done: dict[int, list[str]]
    ):
        self.stage, self.identity, self.chunks, self.done = stage, identity, chunks, done

    @classmethod
    def create(cls, stage: Path, identity: dict[str, Any], chunks: list[Chunk]) -> ChunkManifest:
        stage.mkdir(parents=True, exist_ok=True)
        manifest = cls(stage, identity, chunks, {})
        manifest.save()
        return manifest

    @classmethod
    def load(cls, stage: Path) -> ChunkManifest:
        """Reads a staging folder's manifest; JobError when it is missing or unreadable."""
        path = stage / CHUNKS_FILE
        try:
            data = json.loads(path.read_text())
            chunks = [
                Chunk(
                    c["index"],
                    tuple(
                        ChunkPart(
                            p["file"], p["rows"], None if p["row_groups"] is None else tuple(p["row_groups"])
                        )
                        for p in c["parts"]
                    ),
                )
                for c in data["chunks"]
            ]
            done = {int(k): list(v) for k, v in data["done"].items()}
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise JobError(f"cannot resume from {stage}: {CHUNKS_FILE} is unreadable ({exc})") from None
        return cls(stage, data["identity"], chunks, done)

    def save(self) -> None:
        data = {
            "format": FORMAT,
            "identity": self.identity,
            "chunks": [c.to_dict() for c in self.chunks],
            "done": {str(k): v for k, v in sorted(self.done.items())},
        }
        temporary = self.stage / f".{CHUNKS_FILE}.tmp"
        with open(temporary, "w") as fh:
            fh.write(json.dumps(data, indent=1) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, self.stage / CHUNKS_FILE)

    def writing_dir(self, chunk: Chunk) -> Path:
        """Where the engine writes ``chunk`` (hidden: never read as output until committed)."""
        return self.stage / f".{chunk.name}.writing"

    def pending(self) -> list[Chunk]:
        return [c for c in self.chunks if c.index not in self.done]

    def commit(self, chunk: Chunk) -> None:
        """Moves the chunk's data files to the staging folder's top and records it as done."""
        from common.run.output import output_files, scratch_dir

        written = self.writing_dir(chunk)
        names = []
        for file in output_files(written) if written.exists() else []:
            name = f"{chunk.name}-{'-'.join(file.relative_to(written).parts)}"
            os.rename(file, self.stage / name)
            names.append(name)
        self.done[chunk.index] = names
        self.save()
        shutil.rmtree(written, ignore_errors=True)
        shutil.rmtree(scratch_dir(written), ignore_errors=True)

    def discard_unfinished(self) -> int:
        """Removes whatever chunks not recorded as done left behind (a run killed mid-chunk);
        returns how many files and folders went."""
        keep = {name for names in self.done.values() for name in names}
        removed = 0
        for path in self.stage.iterdir():
            stray = path.name.startswith(("chunk-", ".chunk-")) and path.name not in keep
            if stray:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed += 1
        return removed

    def remove(self) -> None:
        """Drops the manifest before publishing: the output's ``_manifest.json`` says it all."""
        (self.stage / CHUNKS_FILE).unlink(missing_ok=True)


def row_ranges(file: str | Path, row_groups: Sequence[int]) -> list[tuple[int, int]]:
    """The row-index ranges ``[start, end)`` of some row groups of a Parquet file, contiguous
    ones merged (for engines that select rows by their index in the file, as Spark does)."""
    meta = pq.read_metadata(file)
    starts = [0]
    for i in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(i).num_rows)
    ranges: list[tuple[int, int]] = []
    for group in sorted(row_groups):
        start, end = starts[group], starts[group + 1]
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges


@dataclass(frozen=True)
class ChunkedRun:
    """How a run's chunks went: ``already_done`` of ``total`` were committed by an earlier,
    killed run; ``engine_runs`` are the EngineRuns of the chunks run now, in order."""

    total: int
    already_done: int
    engine_runs: tuple

    def resume_note(self) -> str:
        return f"resumed: {self.already_done} of {self.total} chunks were already done"


def run_chunks(manifest: ChunkManifest, inputs, run_engine, progress) -> ChunkedRun:
    """Runs every pending chunk with ``run_engine(chunk inputs, folder)`` and commits each as it
    completes; ``progress`` (``common.run.progress.Progress``) advances by committed rows."""
    already = len(manifest.done)
    progress.advance(sum(c.rows for c in manifest.chunks if c.index in manifest.done))
    runs = []
    for chunk in manifest.pending():
        progress.watch(manifest.writing_dir(chunk))
        runs.append(run_engine(chunk.inputs(inputs), manifest.writing_dir(chunk)))
        manifest.commit(chunk)
        progress.advance(chunk.rows)
    manifest.remove()
    return ChunkedRun(len(manifest.chunks), already, tuple(runs))


def run_identity(job, backend: str, bundle_hash: str, inputs) -> dict[str, Any]:
    """What a staged run was made from; a resume must find the same (``describe_change``)."""
    settings = result_settings(job)
    return {
        "backend": backend,
        "job": str(job.path),
        "bundle": str(job.bundle_path),
        "bundle_hash": bundle_hash,
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "input": input_fingerprint(job.input_path, inputs.files),
        "chunk_rows": job.chunk_rows,
    }


def find_resumable(dest: Path, identity: dict[str, Any]) -> Path | None:
    """The staging folder a killed run of ``dest`` left with committed chunks (the newest), or
    None; JobError, with the staged run kept, when the job, bundle, input or backend changed."""
    from common.run.output import stale_staging

    staged = [p for p in stale_staging(dest) if (p / CHUNKS_FILE).is_file()]
    if not staged:
        return None
    newest = max(staged, key=lambda p: (p / CHUNKS_FILE).stat().st_mtime_ns)
    change = describe_change(ChunkManifest.load(newest).identity, identity)
    if change:
        raise JobError(
            f"cannot resume {dest}: {change} since the killed run; run without --resume to start over"
        )
    return newest
