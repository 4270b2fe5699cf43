"""Runtime values of the compiled expressions, and the op registry (kernels and their facts).

A ``Vec`` holds one column while an expression is evaluated: numbers, booleans, dates (int32 days)
and timestamps (int64 microseconds, UTC) as a torch tensor of their native dtype on the batch's
device with a validity mask; strings as an Arrow array on the host. ``err`` holds, per row, the
code of the ANSI error Spark would raise there (``common.sql.errors.ERROR_CLASSES``), so that a
row whose error sits in an untaken CASE branch, or behind a false AND, raises nothing, as in Spark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from common.sql import types as T
from common.sql.nodes import Node

Kernel = Callable[["Ctx", Node, list["Vec"]], "Vec"]


@dataclass(frozen=True)
class Op:
    """One node op: its kernel and the facts about it that the compiler relies on.

    Attributes:
        kernel: evaluates the op over a batch.
        null_intolerant: null whenever an argument is null (Spark's ``NullIntolerant``): the
            checker answers such an op with a NULL literal argument as NULL at compile time, as
            Spark's NullPropagation does, so that an error in a sibling argument is never raised.
    """

    kernel: Kernel
    null_intolerant: bool


#: node op -> its Op; filled by the ``kernels_*`` modules (``common.sql.evaluate`` imports them all).
OPS: dict[str, Op] = {}


def kernel(*ops: str, null_intolerant: bool):
    """Registers a kernel for the node ops named, with the facts every op declares (``Op``)."""

    def register(fn: Kernel) -> Kernel:
        for op in ops:
            OPS[op] = Op(fn, null_intolerant)
        return fn

    return register


@dataclass
class Vec:
    """One evaluated column: ``data`` is a torch tensor (tensor types) or an Arrow array (strings).

    ``valid`` (bool tensor) is None when every row is valid; strings keep validity in Arrow.
    ``err`` (int8 tensor) is None when no row has an error.
    """

    type: str
    data: Any
    valid: Any = None
    err: Any = None
    constant: tuple | None = None  # (value,) when every row holds this literal: kernels may shortcut


class Ctx:
    """What every kernel needs: the row count and the device of the numeric work."""

    def __init__(self, rows: int, device: torch.device):
        self.rows = rows
        self.device = device
        self._all_valid = torch.ones(1, dtype=torch.bool, device=device).expand(rows)

    # ---- masks -------------------------------------------------------------------------------

    def valid(self, v: Vec) -> torch.Tensor:
        if v.type == T.STRING:
            arr = v.data
            if arr.null_count == 0:
                return self._all_valid
            return self.from_host(arr.is_valid().to_numpy(zero_copy_only=False))
        if v.valid is None:
            return self._all_valid  # a read-only view: callers combine masks, never write to them
        return v.valid

    def ok(self, v: Vec) -> torch.Tensor:
        """Rows that are non-null and free of errors."""
        valid = self.valid(v)
        return valid if v.err is None else valid & (v.err == 0)

    def from_host(self, array: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # zero-copy Arrow memory is read-only; tensors may be written
            array = array.copy()
        return torch.from_numpy(array).to(self.device)

    def to_host(self, tensor: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(tensor.detach().cpu().numpy())

    def arrow_mask(self, mask: torch.Tensor) -> pa.Array:
        return pa.array(self.to_host(mask), type=pa.bool_())

    # ---- errors ------------------------------------------------------------------------------

    def errors(self, *pairs: tuple[torch.Tensor | None, torch.Tensor | None]) -> torch.Tensor | None:
        """Combines (err, evaluated-where) pairs in evaluation order: the first error a row meets wins."""
        out = None
        for err, where in pairs:
            if err is None:
                continue
            if where is not None:
                err = torch.where(where, err, torch.zeros_like(err))
            out = err if out is None else torch.where(out != 0, out, err)
        return out

    def raise_where(
        self, err: torch.Tensor | None, mask: torch.Tensor, error_class: str
    ) -> torch.Tensor | None:
        """Adds ``error_class`` on ``mask`` rows that have no earlier error."""
        from common.sql.errors import ERROR_CODE

        code = torch.full((self.rows,), ERROR_CODE[error_class], dtype=torch.int8, device=self.device)
        own = torch.where(mask, code, torch.zeros_like(code))
        return own if err is None else torch.where(err != 0, err, own)

    def strict_err(self, args: list[Vec], lazy: bool = True) -> torch.Tensor | None:
        """Errors of a null-intolerant operator: Spark evaluates each argument only while the ones
        before it were non-null (``lazy``), or every argument (``lazy=False``)."""
        pairs, before = [], None
        for a in args:
            pairs.append((a.err, before if lazy else None))
            ok = self.ok(a)
            before = ok if before is None else before & ok
        return self.errors(*pairs)

    def all_valid(self, args: list[Vec]) -> torch.Tensor | None:
        out = None
        for a in args:
            if a.type == T.STRING:
                if a.data.null_count == 0:
                    continue
                v = self.valid(a)
            else:
                v = a.valid
            if v is not None:
                out = v if out is None else out & v
        return out

    # ---- conversions -------------------------------------------------------------------------

    def column(self, array: pa.Array | pa.ChunkedArray, typ: str) -> Vec:
        """An input column as a Vec of Spark type ``typ``."""
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if typ == T.STRING:
            return Vec(T.STRING, array if array.type == pa.string() else array.cast(pa.string()))
        if typ == T.DATE:
            array = array.cast(pa.date32()).view(pa.int32())
        elif typ == T.TIMESTAMP:
            array = array.cast(pa.timestamp("us", tz=array.type.tz)).view(pa.int64())
        valid = None
        if array.null_count:
            valid = self.from_host(array.is_valid().to_numpy(zero_copy_only=False))
            array = pc.fill_null(array, False if typ == T.BOOLEAN else 0)
        values = array.to_numpy(zero_copy_only=False)
        return Vec(typ, self.from_host(values), valid)

    def literal(self, value, typ: str) -> Vec:
        if typ == T.STRING or (typ == T.VOID and value is None):
            if typ == T.VOID:
                typ = T.INT
            if typ == T.STRING:
                return Vec(
                    T.STRING,
                    pa.nulls(self.rows, pa.string())
                    if value is None
                    else pa.repeat(pa.scalar(value, pa.string()), self.rows),
                )
        dtype = getattr(torch, T.TORCH_DTYPES[typ])
        # one element broadcast to every row (a stride-0 view: no memory per row)
        if value is None:
            zeros = torch.zeros(1, dtype=dtype, device=self.device).expand(self.rows)
            return Vec(typ, zeros, torch.zeros(1, dtype=torch.bool, device=self.device).expand(self.rows))
        if typ == T.DATE:
            value = (value - _EPOCH).days if not isinstance(value, int) else value
        data = torch.full((1,), value, dtype=dtype, device=self.device).expand(self.rows)
        return Vec(typ, data, constant=(value,))

    def to_arrow(self, v: Vec) -> pa.Array:
        """The Vec as an Arrow array of its Spark type's Arrow type (strings as ``string``)."""
        if v.type == T.STRING:
            return v.data.cast(pa.string())
        values = self.to_host(v.data)
        mask = None if v.valid is None else ~self.to_host(v.valid)
        if v.type in (T.DATE, T.TIMESTAMP):
            raw = pa.array(values, mask=mask)
            return (
                raw.view(T.ARROW_TYPES[v.type])
                if raw.null_count == 0
                else pc.cast(raw, T.ARROW_TYPES[v.type])
            )
        return pa.array(values, mask=mask, type=T.ARROW_TYPES[v.type])

    def tensor_vec(self, typ: str, data: torch.Tensor, valid=None, err=None) -> Vec:
        return Vec(typ, data, valid, err)


_EPOCH = __import__("datetime").date(1970, 1, 1)


def and_masks(*masks):
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out
