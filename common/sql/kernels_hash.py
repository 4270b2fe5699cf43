"""Spark's ``hash`` (Murmur3 x86_32), ``xxhash64`` (XXH64) and ``crc32``, vectorised in NumPy.

Each argument is hashed with the previous argument's hash as its seed (42 for the first); a null
argument leaves the seed unchanged. Numbers hash by type as Spark does: int and date as an int,
bigint and timestamp as a long, a double by its bits with -0.0 as 0.0 and NaN canonical, a string
by its UTF-8 bytes. Hashing runs on the host (bytes are there); the result goes to the device.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from common.sql import types as T
from common.sql.murmur3 import _fmix, _mix_h1, _mix_k1
from common.sql.vec import Ctx, Vec, kernel

_SEED = 42
_U64 = np.uint64
P1, P2, P3, P4, P5 = (
    _U64(v)
    for v in (
        0x9E3779B185EBCA87,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0x85EBCA77C2B2AE63,
        0x27D4EB2F165667C5,
    )
)


def _bits(ctx: Ctx, a: Vec) -> tuple[str, np.ndarray]:
    """("int" | "long", the value's bits) for a tensor Vec, as Spark feeds them to the hasher."""
    values = ctx.to_host(a.data)
    if a.type == T.DOUBLE:
        values = np.where(values == 0.0, 0.0, values)  # -0.0 hashes as 0.0
        bits = values.view(np.int64)
        return "long", np.where(np.isnan(values), np.int64(0x7FF8000000000000), bits)
    if a.type == T.FLOAT:
        values = np.where(values == 0.0, np.float32(0.0), values).astype(np.float32)
        bits = values.view(np.int32)
        return "int", np.where(np.isnan(values), np.int32(0x7FC00000), bits)
    if a.type in (T.BIGINT, T.TIMESTAMP):
        return "long", values.astype(np.int64)
    return "int", values.astype(np.int32)


def _utf8(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(byte buffer, starts, lengths) of a large_string array, nulls as empty."""
    array = array.cast(pa.large_string())
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    data = np.concatenate([data, np.zeros(8, np.uint8)])  # reads past a string's end stay in bounds
    return data, offsets[:-1], offsets[1:] - offsets[:-1]


def _word(data: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(pos.shape, dtype=np.uint64)
    for k in range(width):
        out |= data[pos + k].astype(np.uint64) << _U64(8 * k)
    return out


# ---- Murmur3 -----------------------------------------------------------------------------------


def murmur3(kind: str, values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    seeds = seeds.view(np.uint32)
    if kind == "int":
        return _fmix(_mix_h1(seeds, _mix_k1(values.astype(np.int32).view(np.uint32))), 4).view(np.int32)
    bits = values.astype(np.int64).view(np.uint64)
    h1 = _mix_h1(seeds, _mix_k1((bits & _U64(0xFFFFFFFF)).astype(np.uint32)))
    h1 = _mix_h1(h1, _mix_k1((bits >> _U64(32)).astype(np.uint32)))
    return _fmix(h1, 8).view(np.int32)


def murmur3_utf8(array: pa.Array, seeds: np.ndarray) -> np.ndarray:
    """Spark's ``hashUnsafeBytes``: 4-byte words, then each tail byte sign-extended as a word."""
    data, starts, lengths = _utf8(array)
    h1 = seeds.view(np.uint32).copy()
    words = lengths // 4
    for j in range(int(words.max()) if len(words) else 0):
        rows = np.flatnonzero(words > j)
        k1 = _word(data, starts[rows] + 4 * j, 4).astype(np.uint32)
        h1[rows] = _mix_h1(h1[rows], _mix_k1(k1))
    for t in range(3):
        rows = np.flatnonzero(lengths - 4 * words > t)
        byte = data[starts[rows] + 4 * words[rows] + t].view(np.int8).astype(np.int32).view(np.uint32)
        h1[rows] = _mix_h1(h1[rows], _mix_k1(byte))
    return _fmix(h1, lengths.astype(np.uint32)).view(np.int32)


# ---- XXH64 -------------------------------------------------------------------------------------


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U64(r)) | (x >> _U64(64 - r))


def _xx_fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(33))
    h = h * P2
    h = h ^ (h >> _U64(29))
    h = h * P3
    return h ^ (h >> _U64(32))


def _xx_int(h: np.ndarray, value: np.ndarray) -> np.ndarray:
    h = h ^ (value.astype(np.uint64) & _U64(0xFFFFFFFF)) * P1
    return _rotl(h, 23) * P2 + P3


def _xx_long(h: np.ndarray, value: np.ndarray) -> np.ndarray:
    h = h ^ _rotl(value * P2, 31) * P1
    return _rotl(h, 27) * P1 + P4


def xxhash64(kind: str, values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    seeds = seeds.view(np.uint64)
    with np.errstate(over="ignore"):
        if kind == "int":
            h = _xx_int(seeds + P5 + _U64(4), values.astype(np.int32).view(np.uint32))
        else:
            h = _xx_long(seeds + P5 + _U64(8), values.astype(np.int64).view(np.uint64))
        return _xx_fmix(h).view(np.int64)


def xxhash64_utf8(array: pa.Array, seeds: np.ndarray) -> np.ndarray:
    data, starts, lengths = _utf8(array)
    seeds = seeds.view(np.uint64)
    with np.errstate(over="ignore"):
        h = seeds + P5
        offset = starts.copy()
        big = np.flatnonzero(lengths >= 32)
        if big.size:
            s = seeds[big]
            v = [s + P1 + P2, s + P2, s.copy(), s - P1]
            pos = starts[big].copy()
            end = starts[big] + lengths[big]
            active = np.ones(big.size, dtype=bool)
            while active.any():
                rows = np.flatnonzero(active)
                for k in range(4):
                    lane = v[k][rows] + _word(data, pos[rows] + 8 * k, 8) * P2
                    v[k][rows] = _rotl(lane, 31) * P1
                pos[rows] += 32
                active = pos <= end - 32
            hb = _rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)
            for k in range(4):
                hb = (hb ^ (_rotl(v[k] * P2, 31) * P1)) * P1 + P4
            h[big] = hb
            offset[big] = pos
        h = h + lengths.astype(np.uint64)
        end = starts + lengths
        while True:
            rows = np.flatnonzero(offset + 8 <= end)
            if not rows.size:
                break
            h[rows] = _xx_long(h[rows], _word(data, offset[rows], 8))
            offset[rows] += 8
        rows = np.flatnonzero(offset + 4 <= end)
        h[rows] = _xx_int(h[rows], _word(data, offset[rows], 4))
        offset[rows] += 4
        while True:
            rows = np.flatnonzero(offset < end)
            if not rows.size:
                break
            h[rows] = _rotl(h[rows] ^ data[offset[rows]].astype(np.uint64) * P5, 11) * P1
            offset[rows] += 1
        return _xx_fmix(h).view(np.int64)


@kernel("hash", "xxhash64", null_intolerant=False)
def hash_(ctx: Ctx, node, args):
    murmur = node.op == "hash"
    seeds = np.full(ctx.rows, _SEED, dtype=np.int32 if murmur else np.int64)
    for a in args:
        if a.type == T.STRING:
            hashed = (murmur3_utf8 if murmur else xxhash64_utf8)(a.data, seeds)
            valid = a.data.is_valid().to_numpy(zero_copy_only=False)
        else:
            if a.type == T.BOOLEAN:
                a = Vec(T.INT, a.data.int(), a.valid, a.err)
            kind, bits = _bits(ctx, a)
            hashed = (murmur3 if murmur else xxhash64)(kind, bits, seeds)
            valid = ctx.to_host(ctx.valid(a))
        seeds = np.where(valid, hashed, seeds)
    return Vec(node.type, ctx.from_host(seeds), None, ctx.strict_err(args, lazy=False))


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc_table()


@kernel("crc32", null_intolerant=True)
def crc32(ctx: Ctx, node, args):
    (a,) = args
    data, starts, lengths = _utf8(a.data)
    crc = np.full(len(starts), 0xFFFFFFFF, dtype=np.uint32)
    for j in range(int(lengths.max()) if len(lengths) else 0):  # one step per byte position, all rows at once
        rows = np.flatnonzero(lengths > j)
        byte = data[starts[rows] + j].astype(np.uint32)
        crc[rows] = _TABLE[(crc[rows] ^ byte) & np.uint32(0xFF)] ^ (crc[rows] >> np.uint32(8))
    values = (crc ^ np.uint32(0xFFFFFFFF)).astype(np.int64)
    valid = (
        None if a.data.null_count == 0 else ctx.from_host(a.data.is_valid().to_numpy(zero_copy_only=False))
    )
    return Vec(T.BIGINT, ctx.from_host(values), valid, a.err)
