"""Spark's ``hash()`` (Murmur3 x86_32, seed 42) vectorised in NumPy, bit-for-bit.

Spark hashes strings with ``Murmur3_x86_32.hashUnsafeBytes``, which is *not* standard Murmur3:
after the 4-byte little-endian words, each trailing byte is sign-extended to an int and mixed as
a whole ``k1`` round. Libraries such as ``mmh3`` therefore disagree on any string whose UTF-8
length is not a multiple of 4. A null value leaves the seed unchanged, so ``hash(null) = 42``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SPARK_SEED = 42

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_k1(k1: np.ndarray) -> np.ndarray:
    k1 = k1 * _C1
    k1 = _rotl(k1, 15)
    return k1 * _C2


def _mix_h1(h1: np.ndarray, k1: np.ndarray) -> np.ndarray:
    h1 = _rotl(h1 ^ k1, 13)
    return h1 * np.uint32(5) + np.uint32(0xE6546B64)


def _fmix(h1: np.ndarray, length: np.ndarray | int) -> np.ndarray:
    h1 = h1 ^ np.asarray(length, dtype=np.uint32)
    h1 = h1 ^ (h1 >> np.uint32(16))
    h1 = h1 * np.uint32(0x85EBCA6B)
    h1 = h1 ^ (h1 >> np.uint32(13))
    h1 = h1 * np.uint32(0xC2B2AE35)
    return h1 ^ (h1 >> np.uint32(16))


_FEW_ROWS = 8  # below this many rows still hashing, a NumPy step costs more than a Python loop
_MASK = 0xFFFFFFFF


def _mix_words(h1: int, words: list[int]) -> int:
    """The word loop of ``hashBytesByInt`` on Python ints, for one long string."""
    for k1 in words:
        k1 = (k1 * 0xCC9E2D51) & _MASK
        k1 = (((k1 << 15) | (k1 >> 17)) * 0x1B873593) & _MASK
        h1 ^= k1
        h1 = (((((h1 << 13) | (h1 >> 19)) & _MASK) * 5) + 0xE6546B64) & _MASK
    return h1


def hash_int32(values: np.ndarray, seed: int = SPARK_SEED) -> np.ndarray:
    """``Murmur3_x86_32.hashInt`` (Spark's hash of Byte/Short/IntegerType) -> int32 hashes."""
    k1 = np.asarray(values).astype(np.int32).view(np.uint32)
    h1 = _mix_h1(np.full(k1.shape, seed, dtype=np.uint32), _mix_k1(k1))
    return _fmix(h1, 4).view(np.int32)


def hash_int64(values: np.ndarray, seed: int = SPARK_SEED) -> np.ndarray:
    """``Murmur3_x86_32.hashLong`` (Spark's hash of LongType): low word, then high word."""
    bits = np.asarray(values).astype(np.int64).view(np.uint64)
    low = (bits & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    high = (bits >> np.uint64(32)).astype(np.uint32)
    h1 = _mix_h1(np.full(low.shape, seed, dtype=np.uint32), _mix_k1(low))
    h1 = _mix_h1(h1, _mix_k1(high))
    return _fmix(h1, 8).view(np.int32)


def hash_utf8(array: pa.Array, seed: int = SPARK_SEED) -> np.ndarray:
    """``hashUnsafeBytes`` over each string's UTF-8 bytes; nulls hash to ``seed``.

    Rows are sorted by word count so that the rows still hashing at word ``j`` are a prefix:
    the loop runs once per word of the longest string, each step vectorised over all rows.
    """
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[array.offset : array.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = (offsets[1:] - starts).astype(np.int64)
    words = lengths // 4

    order = np.argsort(-words, kind="stable")
    s_starts, s_words, s_lengths = starts[order], words[order], lengths[order]
    h1 = np.full(n, seed, dtype=np.uint32)
    active, j = n, 0
    while j < s_words[0]:
        while active and s_words[active - 1] <= j:  # drop rows whose words are all consumed
            active -= 1
        if active <= _FEW_ROWS:
            break
        pos = s_starts[:active] + 4 * j
        k1 = (
            data[pos].astype(np.uint32)
            | (data[pos + 1].astype(np.uint32) << np.uint32(8))
            | (data[pos + 2].astype(np.uint32) << np.uint32(16))
            | (data[pos + 3].astype(np.uint32) << np.uint32(24))
        )
        h1[:active] = _mix_h1(h1[:active], _mix_k1(k1))
        j += 1
    for row in range(active if j < s_words[0] else 0):  # the few longest strings: plain ints are faster
        words = data[s_starts[row] + 4 * j : s_starts[row] + 4 * s_words[row]].view("<u4").tolist()
        h1[row] = _mix_words(int(h1[row]), words)
    tails = s_lengths - 4 * s_words
    for t in range(3):
        rows = np.flatnonzero(tails > t)
        if rows.size == 0:
            break
        byte = (
            data[s_starts[rows] + 4 * s_words[rows] + t].view(np.int8).astype(np.int32)
        )  # Java's signed byte
        h1[rows] = _mix_h1(h1[rows], _mix_k1(byte.view(np.uint32)))
    hashed = np.empty(n, dtype=np.uint32)
    hashed[order] = _fmix(h1, s_lengths.astype(np.uint32))
    hashed = hashed.view(np.int32)
    if array.null_count:
        hashed = np.where(array.is_null().to_numpy(zero_copy_only=False), np.int32(seed), hashed)
    return hashed
