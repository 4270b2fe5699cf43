"""String kernels: pyarrow.compute on the host, with Spark's semantics.

``length`` counts code points, ``trim`` removes spaces only, ``substring`` is 1-based with a
negative start counting from the end, ``concat`` is null if any part is, ``concat_ws`` skips
nulls, and ``lower``/``upper`` apply Java's full case mappings (``ß`` -> ``SS``, final sigma):
Arrow maps one code point to one, so the rare rows holding a special-cased letter are redone with
Python's full mapping, which matches Java's.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.sql import types as T
from common.sql.vec import Ctx, Vec, kernel

_STRING = pa.string()  # the one string type inside the compiler (batches are far below 2 GiB)


def _string(ctx: Ctx, a: Vec, data: pa.Array, err=None) -> Vec:
    return Vec(
        T.STRING, data.cast(_STRING) if data.type != _STRING else data, None, a.err if err is None else err
    )


def _tensor(ctx: Ctx, typ: str, array: pa.Array, a: Vec) -> Vec:
    valid = None if array.null_count == 0 else ctx.from_host(array.is_valid().to_numpy(zero_copy_only=False))
    filled = pc.fill_null(array, False if typ == T.BOOLEAN else 0) if array.null_count else array
    values = filled.to_numpy(zero_copy_only=False)
    if typ == T.INT:
        values = values.astype(np.int32)
    return Vec(typ, ctx.from_host(values), valid, a.err)


@functools.cache
def _special_cased(direction: str) -> str:
    """A regex class of the code points whose Java (full) case mapping Arrow's (simple) one misses."""
    chars = []
    for code in range(0x20000):
        c = chr(code)
        mapped = c.upper() if direction == "upper" else c.lower()
        if len(mapped) != 1:
            chars.append(c)
    if direction == "lower":
        chars.append("\u03a3")  # final sigma depends on context
    return "[" + "".join(re.escape(c) for c in chars) + "]"


def _utf8_bytes(arr: pa.Array) -> np.ndarray | None:
    """The UTF-8 bytes of a string array's values, as a zero-copy view (null slots' bytes
    included, so a test on them may say yes where no value does, never the other way round);
    None for another layout."""
    if not isinstance(arr, pa.StringArray):
        return None
    _, offsets, data = arr.buffers()
    if len(arr) == 0 or data is None:
        return np.zeros(0, dtype=np.uint8)
    ends = np.frombuffer(offsets, dtype=np.int32)[[arr.offset, arr.offset + len(arr)]]
    return np.frombuffer(data, dtype=np.uint8)[ends[0] : ends[1]]


# The lead bytes of İ (U+0130, C4 B0) and Σ (U+03A3, CE A3) in UTF-8: without them, no row lowers
# differently under Java's full mapping.
_LOWER_SPECIAL_LEADS = (0xC4, 0xCE)


@kernel("lower", "upper", null_intolerant=True)
def change_case(ctx: Ctx, node, args):
    (a,) = args
    arr = a.data
    raw = _utf8_bytes(arr)
    if raw is not None:
        ascii_only = bool(raw.max(initial=0) < 0x80)
    else:
        ascii_only = pc.all(pc.string_is_ascii(arr)).as_py() is not False
    if ascii_only:  # ASCII (or no row): no special case
        return _string(ctx, a, pc.ascii_upper(arr) if node.op == "upper" else pc.ascii_lower(arr))
    out = pc.utf8_upper(arr) if node.op == "upper" else pc.utf8_lower(arr)
    if node.op == "lower":  # only İ lowers to two code points, and Σ depends on its context
        if raw is not None and not any((raw == lead).any() for lead in _LOWER_SPECIAL_LEADS):
            return _string(ctx, a, out)
        special = pc.or_(pc.match_substring(arr, "\u0130"), pc.match_substring(arr, "\u03a3"))
    else:
        special = pc.match_substring_regex(arr, _special_cased("upper"))
    special = pc.fill_null(special, False)
    rows = np.flatnonzero(special.to_numpy(zero_copy_only=False))
    if rows.size:  # a handful of rows at most in real data: Python's full mapping there
        fixed = [s.upper() if node.op == "upper" else s.lower() for s in arr.take(pa.array(rows)).to_pylist()]
        mask = np.zeros(len(arr), dtype=bool)
        mask[rows] = True
        replacement = np.empty(len(arr), dtype=object)
        replacement[rows] = fixed
        out = pc.if_else(pa.array(mask), pa.array(replacement, type=_STRING), out)
    return _string(ctx, a, out)


@kernel("length", null_intolerant=True)
def length(ctx: Ctx, node, args):
    (a,) = args
    return _tensor(ctx, T.INT, pc.utf8_length(a.data), a)


@kernel("trim", null_intolerant=True)
def trim(ctx: Ctx, node, args):
    (a,) = args
    chars = node.params["chars"]
    if not chars:
        return _string(ctx, a, a.data)
    # An ASCII byte never occurs inside a multi-byte UTF-8 sequence, so ASCII characters (Spark's
    # default, the space) are trimmed byte-wise, which is faster than decoding code points.
    family = "ascii" if chars.isascii() else "utf8"
    return _string(ctx, a, getattr(pc, f"{family}_{node.params['side']}")(a.data, chars))


@kernel("substring", null_intolerant=True)
def substring(ctx: Ctx, node, args):
    (a,) = args
    pos, length = node.params["pos"], node.params["length"]
    if length <= 0:
        return _string(ctx, a, pc.if_else(a.data.is_valid(), "", a.data))
    if pos >= 0:
        start = max(pos - 1, 0)
        stop = start + length
        out = (
            pc.utf8_slice_codeunits(a.data, start, stop)
            if stop < 2**62
            else pc.utf8_slice_codeunits(a.data, start)
        )
    elif pos + length >= 0:
        out = pc.utf8_slice_codeunits(a.data, pos)
    else:
        out = pc.utf8_slice_codeunits(a.data, pos, pos + length)
    return _string(ctx, a, out)


@kernel("concat", null_intolerant=False)
def concat(ctx: Ctx, node, args):
    data = pc.binary_join_element_wise(
        *[a.data for a in args], pa.scalar("", _STRING), null_handling="emit_null"
    )
    return Vec(T.STRING, data.cast(_STRING), None, ctx.strict_err(args, lazy=False))


@kernel("concat_ws", null_intolerant=False)
def concat_ws(ctx: Ctx, node, args):
    if not args:
        return Vec(T.STRING, pa.repeat(pa.scalar("", _STRING), ctx.rows))
    parts = [a.data for a in args]
    # pyarrow drops the rows where every part is null (Spark gives ''): give those rows one empty part
    all_null = functools.reduce(pc.and_, [pc.is_null(p) for p in parts])
    parts[0] = pc.if_else(all_null, pa.scalar("", _STRING), parts[0])
    data = pc.binary_join_element_wise(*parts, pa.scalar(node.params["sep"], _STRING), null_handling="skip")
    return Vec(T.STRING, data.cast(_STRING), None, ctx.strict_err(args, lazy=False))


@kernel("pad", null_intolerant=True)
def pad(ctx: Ctx, node, args):
    (a,) = args
    length, fill, side = node.params["length"], node.params["pad"], node.params["side"]
    if length <= 0:
        return _string(ctx, a, pc.if_else(a.data.is_valid(), "", a.data))
    head = pc.utf8_slice_codeunits(a.data, 0, length)
    if not fill:
        return _string(ctx, a, head)
    repeated = (fill * (length // len(fill) + 1))[:length]
    pieces = pa.array([repeated[:k] for k in range(length + 1)], type=_STRING)  # k characters of padding
    missing = np.clip(
        length - pc.fill_null(pc.utf8_length(a.data), length).to_numpy(zero_copy_only=False), 0, length
    )
    padding = pieces.take(pa.array(missing))
    parts = (padding, head) if side == "lpad" else (head, padding)
    return _string(
        ctx, a, pc.binary_join_element_wise(*parts, pa.scalar("", _STRING), null_handling="emit_null")
    )


@kernel("replace", null_intolerant=True)
def replace(ctx: Ctx, node, args):
    (a,) = args
    search = node.params["search"]
    if not search:
        return a
    return _string(ctx, a, pc.replace_substring(a.data, search, node.params["replacement"]))


@kernel("startswith", "endswith", "contains", null_intolerant=True)
def match(ctx: Ctx, node, args):
    (a,) = args
    fn = {"startswith": pc.starts_with, "endswith": pc.ends_with, "contains": pc.match_substring}[node.op]
    return _tensor(ctx, T.BOOLEAN, fn(a.data, node.params["pattern"]), a)


@kernel("instr", null_intolerant=True)
def instr(ctx: Ctx, node, args):
    (a,) = args
    sub = node.params["sub"]
    if not sub:
        return _tensor(ctx, T.INT, pc.if_else(a.data.is_valid(), 1, pa.scalar(None, pa.int32())), a)
    found = pc.match_substring(a.data, sub)
    before = pc.list_element(pc.split_pattern(a.data, sub, max_splits=1), 0)
    position = pc.add(pc.utf8_length(before), 1)
    return _tensor(ctx, T.INT, pc.if_else(found, position, 0), a)


@kernel("split_part", null_intolerant=True)
def split_part(ctx: Ctx, node, args):
    (a,) = args
    delim, index = node.params["delim"], node.params["index"]
    if not delim:  # Spark: the whole string is the only part
        whole = a.data if index in (1, -1) else pc.if_else(a.data.is_valid(), "", a.data)
        return _string(ctx, a, whole)
    lists = pc.split_pattern(a.data, delim)
    offsets = lists.offsets.to_numpy()
    counts = offsets[1:] - offsets[:-1]
    position = offsets[:-1] + index - 1 if index > 0 else offsets[1:] + index
    inside = (index - 1 < counts) if index > 0 else (counts + index >= 0)
    values = (
        lists.values.take(pa.array(np.where(inside, position, 0)))
        if len(lists.values)
        else pa.nulls(len(a.data), _STRING)
    )
    out = pc.if_else(pa.array(inside), values, "")
    return _string(ctx, a, pc.if_else(a.data.is_valid(), out, a.data))


@kernel("rlike", null_intolerant=True)
def rlike(ctx: Ctx, node, args):
    (a,) = args
    return _tensor(ctx, T.BOOLEAN, pc.match_substring_regex(a.data, node.params["pattern"].re2), a)


@kernel("regexp_replace", null_intolerant=True)
def regexp_replace(ctx: Ctx, node, args):
    (a,) = args
    out = pc.replace_substring_regex(a.data, node.params["pattern"].re2, node.params["replacement"])
    return _string(ctx, a, out)


@kernel("regexp_extract", null_intolerant=True)
def regexp_extract(ctx: Ctx, node, args):
    (a,) = args
    parts = pc.extract_regex(a.data, node.params["pattern"].re2)
    group = pc.fill_null(pc.struct_field(parts, f"g{node.params['group']}"), "")
    return _string(ctx, a, pc.if_else(a.data.is_valid(), group, a.data))
