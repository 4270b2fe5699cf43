"""Spark ML vectors as Parquet stores them, read as ``list<float64>`` so they compare element-wise.

Spark writes a ``VectorUDT`` column (a model's ``probability``, ``rawPrediction``, ``features``)
as ``struct<type: int8, size: int32, indices: list<int32>, values: list<double>>``: ``type`` 1 is a
dense vector (``values`` holds every element, ``size`` and ``indices`` are null), ``type`` 0 a
sparse one (``size`` elements, zero except at ``indices``). A production output written by
Spark ML therefore holds structs where a Ray run of the same model writes lists of floats.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

_FIELDS = {"type": pat.is_integer, "size": pat.is_integer, "indices": None, "values": None}
VECTOR_LIST = pa.large_list(pa.float64())


def is_spark_vector(t: pa.DataType) -> bool:
    """Whether ``t`` is the struct Spark writes for a ``VectorUDT`` column."""
    if not pat.is_struct(t) or {t.field(i).name for i in range(t.num_fields)} != set(_FIELDS):
        return False
    indices, values = t.field("indices").type, t.field("values").type
    return (
        pat.is_integer(t.field("type").type)
        and pat.is_integer(t.field("size").type)
        and _is_list_of(indices, pat.is_integer)
        and _is_list_of(values, pat.is_floating)
    )


def vectors_to_lists(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Dense ``large_list<float64>`` of each Spark vector; a null vector stays null."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    kind = array.field("type").fill_null(1).to_numpy(zero_copy_only=False).astype(np.int8)
    size = array.field("size").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = array.field("values").cast(VECTOR_LIST)
    indices = array.field("indices").cast(pa.large_list(pa.int64()))
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    sparse = (kind == 0) & valid
    value_lengths = pc.list_value_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    lengths = np.where(sparse, size, value_lengths).astype(np.int64)
    lengths[~valid] = 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.zeros(offsets[-1], dtype=np.float64)
    flat = pc.list_flatten(values).to_numpy(zero_copy_only=False).astype(np.float64)
    parents = pc.list_parent_indices(values).to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.zeros(n + 1, dtype=np.int64)  # where each row's elements start in ``flat``
    np.cumsum(value_lengths, out=first[1:])
    within = np.arange(len(flat), dtype=np.int64) - first[parents]
    sparse_elements = sparse[parents]
    if sparse_elements.any():
        picked = indices.filter(pa.array(sparse))
        within[sparse_elements] = pc.list_flatten(picked).to_numpy(zero_copy_only=False)
    keep = valid[parents]
    out[offsets[parents[keep]] + within[keep]] = flat[keep]
    return pa.LargeListArray.from_arrays(
        pa.array(offsets), pa.array(out), mask=pa.array(~valid) if not valid.all() else None
    )


def _is_list_of(t: pa.DataType, element) -> bool:
    return (pat.is_list(t) or pat.is_large_list(t)) and element(t.value_type)
