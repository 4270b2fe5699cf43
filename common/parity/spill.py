"""Pass 1 of the comparison: read each output batch by batch and spill it into key buckets.

Rows are hash-partitioned by key into K bucket files per side, so that pass 2 can load one
bucket of every side at a time and still see all rows of any key together. Memory is then
bounded by the bucket size, not by the output size. Spill files are Arrow IPC streams: they
keep every Arrow type as is and cost no encoding, unlike a Parquet round trip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pyarrow.types as pat

from common.errors import InputError
from common.parity.vectors import VECTOR_LIST, is_spark_vector, vectors_to_lists

READ_BATCH_ROWS = 131_072
MAX_BUCKETS = 512  # keeps the number of open spill files per side well under fd limits
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SEED = np.uint64(0x243F6A8885A308D3)  # non-zero, so a zero hash does not stay zero


@dataclass
class SideSource:
    """One output to compare: its files, unified schema and row count from metadata.

    ``schema`` is what the comparison sees: columns under their compared names (``renamed``
    maps such a name to the one in the files) and Spark ML vectors as ``list<float64>``
    (``vectors`` names them; ``common.parity.vectors``).
    """

    name: str
    path: Path
    dataset: ds.Dataset
    schema: pa.Schema
    rows: int
    files: int
    renamed: dict[str, str] = field(default_factory=dict)
    vectors: frozenset[str] = frozenset()


def open_side(name: str, path: str | Path, rename: Mapping[str, str] | None = None) -> SideSource:
    """Find the Parquet files of an output (a file or a directory) and unify their schemas.

    Files and folders whose name starts with ``_`` or ``.`` (``_SUCCESS``, ``_manifest.json``,
    ``_dead_letter/``, ``.crc``) are skipped; ``key=value`` folders are read as Hive partitions.
    ``rename`` (old name to new) renames the columns of this side that it names.

    Raises:
        InputError: The path is missing, holds no Parquet file, a file cannot be read, or a
            rename gives two columns one name.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{name} output {path} does not exist")
    found = ds.dataset(path, format="parquet", partitioning="hive")
    if not found.files:
        raise InputError(f"{name} output {path} holds no Parquet files")
    schemas = []
    for file in found.files:
        try:
            schemas.append(pq.read_schema(file))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{name} output file {file} is not readable Parquet: {exc}") from exc
    try:
        # Engines may write int32 in one part and int64 in another; promote within a side.
        schema = pa.unify_schemas([*schemas, found.schema], promote_options="permissive")
    except pa.ArrowException as exc:
        raise InputError(f"{name} output {path} has parts with conflicting schemas: {exc}") from exc
    dataset = ds.dataset(path, schema=schema, format="parquet", partitioning="hive")
    renamed = {(rename or {}).get(n, n): n for n in schema.names}
    if len(renamed) < len(schema.names):
        raise InputError(f"{name} output {path}: --rename gives two columns one name ({', '.join(rename)})")
    vectors = frozenset(new for new, old in renamed.items() if is_spark_vector(schema.field(old).type))
    compared = pa.schema(
        [
            pa.field(new, VECTOR_LIST if new in vectors else schema.field(old).type)
            for new, old in renamed.items()
        ]
    )
    return SideSource(name, path, dataset, compared, dataset.count_rows(), len(found.files), renamed, vectors)


def bucket_count(rows: int, bucket_rows: int) -> int:
    """How many buckets keep each near ``bucket_rows`` rows (at least 1, at most MAX_BUCKETS)."""
    return max(1, min(MAX_BUCKETS, math.ceil(rows / max(1, bucket_rows))))


def key_hash(keys: Sequence[pa.Array]) -> np.ndarray:
    """Deterministic 64-bit hash per row of one or more (non-null) key columns.

    The same key value gives the same hash on every side and in every run because keys are
    cast to one common type per column first (see ``spill_side``) and hashed with pandas'
    seeded siphash / integer mixer rather than Python's randomised ``hash``.
    """
    combined = np.full(len(keys[0]), _SEED, dtype=np.uint64)
    for array in keys:
        part = pd.util.hash_array(_hashable(array))
        combined = (combined ^ part) * _MIX
    # splitmix64 finaliser: spreads composite-key combinations over all bits.
    combined ^= combined >> np.uint64(31)
    combined *= np.uint64(0xBF58476D1CE4E5B9)
    combined ^= combined >> np.uint64(29)
    return combined


def _hashable(array: pa.Array) -> np.ndarray:
    t = array.type
    if pat.is_floating(t):
        # +0.0 turns -0.0 into 0.0 so that keys equal under == hash alike.
        return array.cast(pa.float64()).to_numpy(zero_copy_only=False) + 0.0
    if pat.is_temporal(t):
        # Reinterpret the stored integers (dates, times, timestamps): same type, same storage.
        signed = pa.int32() if t.bit_width == 32 else pa.int64()
        return array.view(signed).to_numpy(zero_copy_only=False)
    if pat.is_boolean(t):
        return array.cast(pa.uint8()).to_numpy(zero_copy_only=False)
    if pat.is_integer(t):
        return array.to_numpy(zero_copy_only=False)
    return array.to_numpy(zero_copy_only=False).astype(object)


@dataclass
class SpillResult:
    """What pass 1 learnt about a side besides the bucket files."""

    rows: int = 0
    null_keys: int = 0


def spill_side(
    source: SideSource,
    columns: Sequence[str],
    key_types: Mapping[str, pa.DataType],
    buckets: int,
    directory: Path,
    observe: Callable[[pa.RecordBatch, np.ndarray], None] | None = None,
) -> SpillResult:
    """Read ``columns`` of a side and write them into ``buckets`` IPC files by key hash.

    Args:
        source: The side to read.
        columns: Columns to keep (keys first); the rest are never read.
        key_types: Common type per key column, shared by all sides so equal keys hash alike.
        buckets: Number of bucket files.
        directory: Where the bucket files go (``bucket-00000.arrow`` ...).
        observe: Called with each (key-normalised, null-key-free) batch and its key hashes,
            to collect streaming figures such as score distributions.

    Raises:
        InputError: A value that cannot be read or a key that cannot be cast to the key type.
    """
    directory.mkdir(parents=True, exist_ok=True)
    result = SpillResult()
    schema = _spill_schema(source.schema, columns, key_types)
    writers = [pa.ipc.new_stream(directory / f"bucket-{k:05d}.arrow", schema) for k in range(buckets)]
    scanner = source.dataset.scanner(
        columns={c: ds.field(source.renamed.get(c, c)) for c in columns},
        batch_size=READ_BATCH_ROWS,
        batch_readahead=1,
        fragment_readahead=1,
        use_threads=True,
    )
    try:
        for batch in _batches(scanner, source):
            result.rows += batch.num_rows
            batch = _normalise(batch, schema, source, key_types)
            has_null_key = _any_null(batch, key_types)
            if has_null_key is not None:
                result.null_keys += int(np.count_nonzero(has_null_key))
                batch = batch.filter(pa.array(~has_null_key))
            if not batch.num_rows:
                continue
            hashes = key_hash([batch.column(k) for k in key_types])
            if observe is not None:
                observe(batch, hashes)
            _write_partitioned(batch, hashes % np.uint64(buckets), writers)
    finally:
        for writer in writers:
            writer.close()
    return result


def read_bucket(directory: Path, bucket: int) -> pa.Table:
    """Load one bucket file of a side as a single-chunk table."""
    with pa.ipc.open_stream(directory / f"bucket-{bucket:05d}.arrow") as reader:
        return reader.read_all().combine_chunks()


def _batches(scanner: ds.Scanner, source: SideSource):
    try:
        yield from scanner.to_batches()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source.name} output {source.path} could not be read: {exc}") from exc


def _spill_schema(schema: pa.Schema, columns, key_types) -> pa.Schema:
    fields = []
    for name in columns:
        t = key_types.get(name, schema.field(name).type)
        if pat.is_dictionary(t):
            t = t.value_type  # IPC streams want one dictionary; decode instead
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def _normalise(batch: pa.RecordBatch, schema: pa.Schema, source, key_types) -> pa.RecordBatch:
    arrays = []
    for target in schema:
        array = batch.column(target.name)
        if target.name in source.vectors:
            array = vectors_to_lists(array)
        if array.type != target.type:
            try:
                array = array.cast(target.type)
            except pa.ArrowException as exc:
                what = "key" if target.name in key_types else "column"
                raise InputError(
                    f"{source.name} output {source.path}: {what} '{target.name}' cannot be cast "
                    f"from {array.type} to {target.type}: {exc}"
                ) from exc
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _any_null(batch: pa.RecordBatch, key_types) -> np.ndarray | None:
    if not any(batch.column(k).null_count for k in key_types):
        return None
    mask = np.zeros(batch.num_rows, dtype=bool)
    for k in key_types:
        mask |= batch.column(k).is_null().to_numpy(zero_copy_only=False)
    return mask


def _write_partitioned(batch: pa.RecordBatch, bucket_of_row: np.ndarray, writers) -> None:
    if len(writers) == 1:
        writers[0].write_batch(batch)
        return
    order = np.argsort(bucket_of_row, kind="stable")  # stable: keeps file order within a bucket
    counts = np.bincount(bucket_of_row.astype(np.intp), minlength=len(writers))
    ordered = batch.take(pa.array(order))
    start = 0
    for bucket, count in enumerate(counts):
        if count:
            writers[bucket].write_batch(ordered.slice(start, int(count)))
            start += int(count)
