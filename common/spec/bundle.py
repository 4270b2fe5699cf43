"""The model bundle: a folder holding a model artifact and the ``bundle.toml`` that describes it.

A bundle is the one shared definition both executors run: which columns the model reads, which
transforms prepare them, which columns it writes and with what Arrow types. Everything is checked
here, before any engine starts, so that a typo fails in a second with a message naming the field;
what only a kind can check (its methods, its artifact against the declared outputs) its handler
checks on the driver at preflight (``ModelHandler.validate``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from common.errors import BundleError, JobError
from common.spec.kinds import kind_names
from common.spec.parity import parse_parity_settings
from common.spec.toml import load_toml, parse_table
from common.spec.transforms import Transform, parse_transforms

BUNDLE_FILE = "bundle.toml"


@dataclass(frozen=True)
class Bundle:
    """A parsed and validated model bundle.

    Attributes:
        path: the bundle folder (absolute).
        kind: the bundle kind, a key of ``common.spec.kinds.KINDS``.
        artifact: the model file (absolute), or None for a ``python`` bundle without one.
        features: the model's input columns, in order (input columns or transform outputs).
        outputs: output column name -> Arrow type, in the order the model produces them.
        transforms: the feature transforms applied before the model, in order.
        batch_size: rows per model call (and per Arrow batch on Spark).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        method: the model's method, for kinds that have several (sklearn: ``predict`` or ``predict_proba``).
        task: what a ``transformers`` model does (``text-classification``, ``feature-extraction``,
            ``text-generation``); None for the other kinds.
        entrypoint: ``module:ClassName`` of a ``python`` bundle's handler.
        options: free-form table passed to a ``python`` handler.
        sql_ansi: Spark's ``spark.sql.ansi.enabled`` for the ``sql`` transforms (true: Spark 4's
            default; false: Spark 3's legacy semantics), on Spark and on the compiled side.
        legacy_pipeline: the Spark ML PipelineModel the bundle was imported from (absolute), which
            the ``legacy`` backend runs; None for a bundle that has none.
        parity: the bundle's ``[parity]`` defaults (a job's ``[parity]`` overrides them), as written.
        input: what a ``sklearn`` model is handed: ``matrix`` (float64 columns), ``dataframe`` (the
            columns typed as pandas has them) or ``auto`` (``common.model.kinds.sklearn``).
        model_uri: an ``mlflow`` model named by URI (``models:/name/3``, ``runs:/id/path``) instead
            of an ``artifact`` folder; the driver copies it into the bundle (``kinds.mlflow``).
    """

    path: Path
    kind: str
    artifact: Path | None
    features: tuple[str, ...]
    outputs: Mapping[str, pa.DataType]
    transforms: tuple[Transform, ...] = ()
    batch_size: int = 1024
    device: str = "auto"
    method: str = "predict"
    entrypoint: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    task: str | None = None
    sql_ansi: bool = True
    legacy_pipeline: Path | None = None
    parity: Mapping[str, Any] = field(default_factory=dict)
    input: str = "auto"
    model_uri: str | None = None

    @property
    def outputs_schema(self) -> pa.Schema:
        """The ``[outputs]`` table as an Arrow schema: what the model writes, in order."""
        return pa.schema([(name, typ) for name, typ in self.outputs.items()])

    @property
    def transform_outputs(self) -> list[str]:
        return [c for t in self.transforms for c in t.output_columns()]

    def content_hash(self) -> str:
        """SHA-256 over every file in the bundle folder, to tie an output to the exact model. A
        model named by ``model_uri`` has been resolved and copied into the folder by the driver
        first (``common.model.kinds.pin_remote_model``), so its bytes are part of the hash."""
        digest = hashlib.sha256()
        for file in sorted(p for p in self.path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(file.relative_to(self.path)).encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()


def parse_arrow_type(text: str, where: str) -> pa.DataType:
    """``float64``, ``int64``, ``string``, ``bool``, ``list<float32>`` ... -> an Arrow type."""
    text = text.strip()
    match = re.fullmatch(r"(?:list|array)<(.+)>", text)
    if match:
        return pa.list_(parse_arrow_type(match.group(1), where))
    try:
        return pa.type_for_alias(text)
    except (ValueError, KeyError):
        raise BundleError(
            f'{where}: unknown Arrow type "{text}"; use e.g. float64, int64, string, bool, list<float32>'
        ) from None


def load_bundle(path: str | Path) -> Bundle:
    """Reads and validates ``<path>/bundle.toml``; raises BundleError naming the problem."""
    folder = Path(path).resolve()
    spec_file = folder / BUNDLE_FILE
    if not folder.is_dir():
        raise BundleError(f"model bundle {folder}: no such folder")
    if not spec_file.is_file():
        raise BundleError(f"model bundle {folder}: missing {BUNDLE_FILE}")
    return parse_bundle(load_toml(spec_file, BundleError), folder, str(spec_file))


@dataclass(frozen=True)
class _BundleTable:
    """The fields of ``bundle.toml``; kind-specific checks are the kind's (``ModelHandler.validate``)."""

    kind: str
    features: tuple[str, ...]
    outputs: Mapping[str, str]
    artifact: str | None = None
    method: str = "predict"
    entrypoint: str | None = None
    batch_size: int = 1024
    device: Literal["auto", "cpu", "cuda"] = "auto"
    transforms: Any = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    task: str | None = None
    sql_ansi: bool = True
    legacy_pipeline: str | None = None
    parity: Mapping[str, Any] = field(default_factory=dict)
    input: Literal["auto", "matrix", "dataframe"] = "auto"
    model_uri: str | None = None

    def check(self, where: str) -> None:
        if self.kind not in kind_names():
            raise BundleError(f'{where}: field "kind" is "{self.kind}"; valid: {", ".join(kind_names())}')
        if not self.features or not all(self.features):
            raise BundleError(f'{where}: field "features" must be a non-empty list of column names')
        if len(set(self.features)) != len(self.features):
            raise BundleError(f'{where}: field "features" lists a column twice')
        if not self.outputs:
            raise BundleError(f'{where}: field "outputs" must declare at least one column')
        if self.batch_size < 1:
            raise BundleError(
                f'{where}: field "batch_size" must be a positive integer, got {self.batch_size!r}'
            )
        if self.kind == "python" and (self.entrypoint is None or ":" not in self.entrypoint):
            raise BundleError(f'{where}: a python bundle needs entrypoint = "module:ClassName"')
        if self.input != "auto" and self.kind != "sklearn":
            raise BundleError(f'{where}: field "input" is for kind sklearn only')
        if self.model_uri is not None and (self.kind != "mlflow" or self.artifact is not None):
            raise BundleError(f'{where}: field "model_uri" is for kind mlflow, instead of "artifact"')
        if self.kind != "python" and self.artifact is None and self.model_uri is None:
            raise BundleError(f'{where}: missing field "artifact"')


def parse_bundle(raw: Mapping[str, Any], folder: Path, where: str) -> Bundle:
    """The bundle described by ``raw`` (a ``bundle.toml``'s tables) in ``folder``."""
    table = parse_table(_BundleTable, raw, where, BundleError)
    artifact = None
    if table.artifact is not None:
        artifact = folder / table.artifact
        if not Path(os.path.normpath(artifact)).is_relative_to(folder):  # lexical: symlinks may point out
            raise BundleError(f'{where}: field "artifact" ({table.artifact}) is outside the bundle folder')
        if not artifact.exists():  # a file, or a folder (transformers); the kind checks which
            raise BundleError(f"{where}: artifact {artifact.name} not found in {folder}")
    outputs = {
        name: parse_arrow_type(str(typ), f'{where}: field "outputs.{name}"')
        for name, typ in table.outputs.items()
    }
    transforms = tuple(
        dataclasses.replace(t, params={**t.params, "ansi": table.sql_ansi}) if t.op == "sql" else t
        for t in parse_transforms(table.transforms, where)
    )
    _check_parity(table.parity, where)
    produced = {c for t in transforms for c in t.output_columns()}
    clash = sorted(set(outputs) & produced)
    if clash:
        raise BundleError(f'{where}: output "{clash[0]}" is also written by a transform')
    return Bundle(
        path=folder,
        kind=table.kind,
        artifact=artifact,
        features=table.features,
        outputs=outputs,
        transforms=transforms,
        batch_size=table.batch_size,
        device=table.device,
        method=table.method,
        entrypoint=table.entrypoint,
        options=table.options,
        name=table.name or folder.name,
        task=table.task,
        sql_ansi=table.sql_ansi,
        legacy_pipeline=None if table.legacy_pipeline is None else (folder / table.legacy_pipeline).resolve(),
        parity=table.parity,
        input=table.input,
        model_uri=table.model_uri,
    )


def bundle_parity(bundle_path: Path) -> Mapping[str, Any]:
    """The ``[parity]`` defaults of the bundle in ``bundle_path`` ({} when it has none or cannot be
    read: loading the bundle, which every run does, reports that)."""
    try:
        raw = load_toml(Path(bundle_path) / BUNDLE_FILE, BundleError)
    except (BundleError, OSError):
        return {}
    parity = raw.get("parity", {})
    return parity if isinstance(parity, Mapping) else {}


def _check_parity(parity: Mapping[str, Any], where: str) -> None:
    try:
        parse_parity_settings(parity, where)
    except JobError as exc:
        raise BundleError(str(exc)) from None
