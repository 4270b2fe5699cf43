"""Reads a PipelineModel as Spark saved it (``model.write().save(dir)``), without a JVM.

A saved stage is a folder with ``metadata/part-*`` (one JSON line: class, uid, ``paramMap`` of
set parameters, ``defaultParamMap``) and, for fitted models, ``data/*.parquet`` (coefficients,
tree nodes, labels...). Reading the Parquet with pyarrow gives Spark's doubles bit for bit; the
JVM's Python API would carry them as text. Nested PipelineModels are flattened in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import BundleError

# The JVM's writer, and pyspark's (used when a stage is a Python object, such as a nested pipeline).
PIPELINE_MODELS = ("org.apache.spark.ml.PipelineModel", "pyspark.ml.pipeline.PipelineModel")


@dataclass(frozen=True)
class SavedStage:
    """One stage of a saved pipeline.

    Attributes:
        uid: the stage's uid, e.g. ``StringIndexer_f68f91eda5d2``.
        cls: its class, e.g. ``org.apache.spark.ml.feature.StringIndexerModel``.
        params: every parameter with its value (set ones over defaults).
        set_params: the names the user set explicitly.
        path: the stage's folder.
        metadata: the whole metadata record (``numFeatures``, ``numClasses``... live there too).
    """

    uid: str
    cls: str
    params: dict[str, Any]
    set_params: frozenset[str]
    path: Path
    metadata: dict[str, Any] = field(repr=False)

    @property
    def short_class(self) -> str:
        return self.cls.rsplit(".", 1)[-1]

    def describe(self) -> str:
        return f"stage {self.uid} ({self.short_class})"

    def data(self, folder: str = "data") -> pa.Table:
        """The stage's saved Parquet data (``data`` or ``treesMetadata``)."""
        files = sorted((self.path / folder).glob("*.parquet"))
        if not files:
            raise BundleError(f"{self.describe()}: no Parquet files in {self.path / folder}")
        try:
            return pa.concat_tables([pq.read_table(f) for f in files])
        except (OSError, pa.ArrowInvalid) as exc:
            raise BundleError(f"{self.describe()}: cannot read {self.path / folder}: {exc}") from None

    def first_row(self) -> dict[str, Any]:
        table = self.data()
        if table.num_rows != 1:
            raise BundleError(f"{self.describe()}: expected one row of data, found {table.num_rows}")
        return table.slice(0, 1).to_pylist()[0]


def read_metadata(folder: Path) -> dict[str, Any]:
    files = sorted((folder / "metadata").glob("part-*"))
    if not files:
        raise BundleError(f"{folder}: not a saved Spark ML stage (no metadata/part-* file)")
    try:
        return json.loads(files[0].read_text().strip().splitlines()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise BundleError(f"{files[0]}: unreadable Spark ML metadata: {exc}") from None


def read_stage(folder: Path) -> SavedStage:
    meta = read_metadata(folder)
    params = {**meta.get("defaultParamMap", {}), **meta.get("paramMap", {})}
    return SavedStage(
        uid=str(meta.get("uid", folder.name)),
        cls=str(meta.get("class", "?")),
        params=params,
        set_params=frozenset(meta.get("paramMap", {})),
        path=folder,
        metadata=meta,
    )


def read_pipeline(folder: str | Path) -> list[SavedStage]:
    """The stages of the PipelineModel saved in ``folder``, nested pipelines flattened."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"pipeline {folder}: no such folder")
    root = read_stage(folder)
    if root.cls not in PIPELINE_MODELS:
        raise BundleError(f"pipeline {folder}: a {root.short_class}, not a saved PipelineModel")
    return _flatten(root)


def _flatten(pipeline: SavedStage) -> list[SavedStage]:
    uids = pipeline.params.get("stageUids", [])
    folders = {p.name.split("_", 1)[1]: p for p in (pipeline.path / "stages").iterdir() if "_" in p.name}
    stages: list[SavedStage] = []
    for uid in uids:
        if uid not in folders:
            raise BundleError(f"pipeline {pipeline.path}: stage {uid} has no folder under stages/")
        stage = read_stage(folders[uid])
        stages.extend(_flatten(stage) if stage.cls in PIPELINE_MODELS else [stage])
    return stages


def vector_values(struct: dict[str, Any] | None, size: int | None = None) -> np.ndarray:
    """A saved ``VectorUDT`` (type 0 sparse, 1 dense) as a dense float64 array."""
    if struct is None:
        raise BundleError("a saved vector is missing")
    if struct["type"] == 1:
        return np.asarray(struct["values"], dtype=np.float64)
    dense = np.zeros(struct["size"] if size is None else size, dtype=np.float64)
    dense[np.asarray(struct["indices"], dtype=np.int64)] = struct["values"]
    return dense


def matrix_values(struct: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """A saved ``MatrixUDT`` as a dense (rows, cols) float64 array, and whether Spark stores it
    row-major (``isTransposed``), which decides the order of its matrix-vector products."""
    rows, cols = struct["numRows"], struct["numCols"]
    values = np.asarray(struct["values"], dtype=np.float64)
    transposed = bool(struct["isTransposed"])
    if struct["type"] == 1:  # dense: column-major unless transposed
        dense = values.reshape(rows, cols) if transposed else values.reshape(cols, rows).T
        return np.ascontiguousarray(dense), transposed
    dense = np.zeros((rows, cols), dtype=np.float64)  # sparse: CSC, or CSR when transposed
    pointers, indices = struct["colPtrs"], struct["rowIndices"]
    for major in range(len(pointers) - 1):
        for k in range(pointers[major], pointers[major + 1]):
            if transposed:
                dense[major, indices[k]] = values[k]
            else:
                dense[indices[k], major] = values[k]
    return dense, transposed
