"""The columns of one batch on their way into a model, in every executor's workers: Spark's batch
UDF (the model only: Spark computed the transforms as columns), and Ray's tasks and actors and the
reference executor (the transforms, then the model); the driver's checks use it too.

Numeric columns become float64 tensors on the model's device once, and numeric transform results
stay there, so preprocessing runs on the GPU when the model does, with no host round trip between
ops. Other columns stay Arrow on the host. Nothing changes type silently: asking a string column
for a tensor is an error, never a column of NaNs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from common.errors import BundleError, InputError


@dataclass
class TensorColumn:
    """A numeric column held as a tensor.

    Attributes:
        values: one value per row, on the batch's device; meaningless where not valid. float64 for
            the numeric ops; an sql transform keeps its native dtype (float32 for a Spark float).
        valid: bool mask of non-null rows, or None when no row is null.
        arrow_type: the type it becomes on the host (float64, or int64 for integer results).
    """

    values: torch.Tensor
    valid: torch.Tensor | None
    arrow_type: pa.DataType = pa.float64()

    def with_nan_for_null(self) -> torch.Tensor:
        """The values with NaN where null (what a model's feature matrix holds for a missing value)."""
        if self.valid is None:
            return self.values
        return torch.where(self.valid, self.values, torch.full_like(self.values, float("nan")))


class FeatureBatch:
    """One batch's columns by name: Arrow arrays on the host or TensorColumns on ``device``.

    Args:
        table: the input batch.
        device: where numeric columns and transform results live (the model's device).
    """

    def __init__(self, table: pa.Table, device: str | torch.device = "cpu"):
        self.num_rows = table.num_rows
        self.device = torch.device(device)
        self._columns: dict[str, pa.Array | TensorColumn] = {
            name: _single_array(table.column(name)) for name in table.column_names
        }
        self._tensors: dict[str, TensorColumn] = {}  # Arrow columns already copied to the device

    def names(self) -> list[str]:
        return list(self._columns)

    def _get(self, name: str) -> pa.Array | TensorColumn:
        try:
            return self._columns[name]
        except KeyError:
            raise InputError(f'input has no column "{name}" (needed by the bundle)') from None

    def arrow_type(self, name: str) -> pa.DataType:
        """The column's Arrow type (a TensorColumn's host type), without copying it anywhere."""
        column = self._get(name)
        return column.type if isinstance(column, pa.Array) else column.arrow_type

    def arrow(self, name: str) -> pa.Array:
        """The column as a host Arrow array; a TensorColumn is copied back, null where not valid."""
        column = self._get(name)
        if isinstance(column, pa.Array):
            return column
        values = column.values.detach().cpu().numpy()
        mask = None if column.valid is None else ~column.valid.cpu().numpy()
        if pa.types.is_integer(column.arrow_type):
            values = np.where(mask, 0.0, values) if mask is not None else values
            values = values.astype(column.arrow_type.to_pandas_dtype())
        return pa.array(values, type=column.arrow_type, mask=mask)

    def tensor(self, name: str) -> TensorColumn:
        """The column as float64 on the device (ints and bools cast); BundleError if not numeric."""
        column = self._get(name)
        if isinstance(column, TensorColumn) and column.values.dtype == torch.float64:
            return column
        if isinstance(column, TensorColumn):  # a native dtype (an sql transform's float32): as float64
            if name not in self._tensors:
                self._tensors[name] = TensorColumn(
                    column.values.to(torch.float64), column.valid, pa.float64()
                )
            return self._tensors[name]
        if name not in self._tensors:
            values, valid = arrow_to_float64(column, name)
            self._tensors[name] = TensorColumn(
                self._to_device(values), None if valid is None else self._to_device(valid), pa.float64()
            )
        return self._tensors[name]

    def set(self, name: str, column: pa.Array | pa.ChunkedArray | TensorColumn) -> None:
        """Adds or replaces a column (a transform's output); it must have one value per row."""
        if not isinstance(column, TensorColumn):
            column = _single_array(column)
        if len(column.values if isinstance(column, TensorColumn) else column) != self.num_rows:
            raise BundleError(
                f'column "{name}" has a different number of rows than the batch ({self.num_rows})'
            )
        self._columns[name] = column
        self._tensors.pop(name, None)

    def matrix(self, names: list[str], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(num_rows, len(names)) on the device, null -> NaN: a torch model's input."""
        if not names:
            return torch.empty((self.num_rows, 0), dtype=dtype, device=self.device)
        return torch.stack([self.tensor(n).with_nan_for_null() for n in names], dim=1).to(dtype)

    def padded(
        self, name: str, *, side: str = "right", pad: int = 0, dtype: torch.dtype = torch.int64
    ) -> torch.Tensor:
        """A ``list<int>`` column (token ids) as one (num_rows, longest row) tensor on the device.

        Rows shorter than the longest are filled with ``pad`` on ``side`` (``right``, or ``left``
        for decoders); a null row is all padding. Built on the host in one NumPy scatter, then
        copied once (pinned, asynchronous on CUDA).
        """
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        column = self._get(name)
        if (
            isinstance(column, TensorColumn)
            or not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type))
            or not pa.types.is_integer(column.type.value_type)
        ):
            typ = "numeric" if isinstance(column, TensorColumn) else column.type
            raise BundleError(f'column "{name}" is {typ}, not a list of integers; padded() needs token ids')
        lengths = (
            pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        )
        values = pc.list_flatten(column)  # null rows emit nothing
        if values.null_count:
            raise InputError(f'column "{name}" has a null inside a list; token ids cannot be null')
        width = int(lengths.max()) if self.num_rows else 0
        out = np.full((self.num_rows, width), pad, dtype=torch.empty(0, dtype=dtype).numpy().dtype)
        if len(values):
            rows = np.repeat(np.arange(self.num_rows), lengths)
            starts = np.cumsum(lengths) - lengths
            cols = np.arange(len(values)) - np.repeat(starts, lengths)
            if side == "left":
                cols += np.repeat(width - lengths, lengths)
            out[rows, cols] = values.to_numpy(zero_copy_only=False)
        return self._to_device(out)

    def numpy(self, names: list[str]) -> np.ndarray:
        """float64 (num_rows, len(names)) on the host, null -> NaN; Arrow columns skip the device."""
        out = np.empty((self.num_rows, len(names)), dtype=np.float64)
        for i, name in enumerate(names):
            column = self._get(name)
            if isinstance(column, TensorColumn):
                out[:, i] = column.with_nan_for_null().detach().cpu().numpy()
            else:
                values, valid = arrow_to_float64(column, name)
                out[:, i] = values if valid is None else np.where(valid, values, np.nan)
        return out

    def pandas(self, names: list[str]) -> pd.DataFrame:
        """float64 columns named ``names``, null -> NaN (for models trained on DataFrames)."""
        return pd.DataFrame(self.numpy(names), columns=list(names))

    def dataframe(self, names: list[str]) -> pd.DataFrame:
        """The columns named ``names`` with their types, as pandas reads them from Parquet: strings
        as objects (None for null), integers as int64 (float64 with NaN where a batch has a null),
        dates as ``datetime.date``, timestamps as ``datetime64``, booleans as bool (objects with a
        null). What differs only in how an engine carries a column (``large_string``, a dictionary,
        a time zone, an integer's width) is made one first, so every backend and every batch cut
        hands the model the same frame, laid out the same in memory."""
        table = self.table(names)
        return pa.Table.from_arrays(
            [_canonical(table.column(i).combine_chunks()) for i in range(table.num_columns)], names=names
        ).to_pandas()

    def table(self, names: list[str] | None = None) -> pa.Table:
        """Those columns (all by default) as a host Arrow table."""
        names = self.names() if names is None else list(names)
        return pa.Table.from_arrays([self.arrow(n) for n in names], names=names)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        if not array.flags.writeable:  # zero-copy Arrow memory is read-only; tensors may be written
            array = array.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":  # pinned staging makes the copy DMA and asynchronous
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)


def arrow_to_float64(array: pa.Array, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric Arrow array -> (float64 values with 0 for null, valid mask or None).

    The casts match Spark's ``cast(x as double)``: integers round to nearest, and decimals go
    through their exact decimal text, because Arrow's decimal->float64 cast is not correctly
    rounded (it gives 0.30000000000000004 for 0.3 where Spark gives 0.3).
    """
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    typ = array.type
    if pa.types.is_decimal(typ):
        array = pc.cast(pc.cast(array, pa.string()), pa.float64())
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ):
        array = pc.cast(array, pa.float64(), safe=False)
    else:
        raise BundleError(
            f'column "{name}" is {typ}, not numeric; a numeric transform or model input needs numbers'
        )
    if array.null_count == 0:
        return array.to_numpy(zero_copy_only=False), None
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return pc.fill_null(array, 0.0).to_numpy(zero_copy_only=False), valid


def _canonical(array: pa.Array) -> pa.Array:
    """One Arrow type per kind of value, whichever engine carried the column: Spark hands strings
    as ``large_string``, dictionaries decoded and timestamps in its session zone; Parquet read by
    pyarrow keeps what was written."""
    typ = array.type
    if pa.types.is_dictionary(typ):
        return _canonical(array.dictionary_decode())
    if pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return array.cast(pa.string())
    if pa.types.is_large_binary(typ):
        return array.cast(pa.binary())
    if pa.types.is_integer(typ) and typ != pa.uint64():
        return array.cast(pa.int64())
    if pa.types.is_date64(typ):
        return array.cast(pa.date32())
    if pa.types.is_timestamp(typ):
        target = pa.timestamp("us", None if typ.tz is None else "UTC")
        try:
            return array.cast(target)  # safe: a nanosecond that microseconds cannot hold stays ns
        except pa.ArrowInvalid:
            return array.cast(pa.timestamp("ns", target.tz))
    return array


def _single_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column
