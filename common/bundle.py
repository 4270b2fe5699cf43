"""The model bundle: a folder holding a model artifact and the ``bundle.toml`` that describes it.

A bundle is the one shared definition both executors run: which columns the model reads, which
transforms prepare them, which columns it writes and with what Arrow types. Everything is checked
here, before any engine starts, so that a typo fails in a second with a message naming the field.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from common.errors import BundleError
from common.transforms import Transform, parse_transforms

BUNDLE_FILE = "bundle.toml"
KINDS = ("sklearn", "torch", "python")
DEVICES = ("auto", "cpu", "cuda")
SKLEARN_METHODS = ("predict", "predict_proba")
_FIELDS = {
    "artifact", "kind", "method", "entrypoint", "features", "outputs", "batch_size", "device",
    "transforms", "options", "name", "description",
}


@dataclass(frozen=True)
class Bundle:
    """A parsed and validated model bundle.

    Attributes:
        path: the bundle folder (absolute).
        kind: ``sklearn``, ``torch`` or ``python``.
        artifact: the model file (absolute), or None for a ``python`` bundle without one.
        features: the model's input columns, in order (input columns or transform outputs).
        outputs: output column name -> Arrow type, in the order the model produces them.
        transforms: the feature transforms applied before the model, in order.
        batch_size: rows per model call (and per Arrow batch on Spark).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        method: the sklearn method (``predict`` or ``predict_proba``).
        entrypoint: ``module:ClassName`` of a ``python`` bundle's handler.
        options: free-form table passed to a ``python`` handler.
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

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([(name, typ) for name, typ in self.outputs.items()])

    @property
    def transform_outputs(self) -> list[str]:
        return [c for t in self.transforms for c in t.output_columns()]

    def content_hash(self) -> str:
        """SHA-256 over every file in the bundle folder, to tie an output to the exact model."""
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
        raise BundleError(f'{where}: unknown Arrow type "{text}"; use e.g. float64, int64, string, bool, list<float32>') from None


def load_bundle(path: str | Path) -> Bundle:
    """Reads and validates ``<path>/bundle.toml``; raises BundleError naming the problem."""
    folder = Path(path).resolve()
    spec_file = folder / BUNDLE_FILE
    if not folder.is_dir():
        raise BundleError(f"model bundle {folder}: no such folder")
    if not spec_file.is_file():
        raise BundleError(f"model bundle {folder}: missing {BUNDLE_FILE}")
    try:
        raw = tomllib.loads(spec_file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{spec_file}: malformed TOML: {exc}") from None
    return parse_bundle(raw, folder, str(spec_file))


def parse_bundle(raw: Mapping[str, Any], folder: Path, where: str) -> Bundle:
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise BundleError(f'{where}: unknown field "{unknown[0]}"; valid: {", ".join(sorted(_FIELDS))}')
    kind = _require(raw, "kind", str, where)
    if kind not in KINDS:
        raise BundleError(f'{where}: kind "{kind}" is not one of {", ".join(KINDS)}')

    artifact = None
    if "artifact" in raw or kind != "python":
        artifact = folder / _require(raw, "artifact", str, where)
        if not artifact.is_file():
            raise BundleError(f"{where}: artifact {artifact.name} not found in {folder}")

    method = raw.get("method", "predict")
    if kind == "sklearn" and method not in SKLEARN_METHODS:
        raise BundleError(f'{where}: method "{method}" is not one of {", ".join(SKLEARN_METHODS)}')
    entrypoint = raw.get("entrypoint")
    if kind == "python" and (not isinstance(entrypoint, str) or ":" not in entrypoint):
        raise BundleError(f'{where}: a python bundle needs entrypoint = "module:ClassName"')

    features = _require(raw, "features", list, where)
    if not features or not all(isinstance(f, str) and f for f in features):
        raise BundleError(f"{where}: features must be a non-empty list of column names")
    if len(set(features)) != len(features):
        raise BundleError(f"{where}: features lists a column twice")

    outputs_raw = _require(raw, "outputs", dict, where)
    if not outputs_raw:
        raise BundleError(f"{where}: outputs must declare at least one column")
    outputs = {name: parse_arrow_type(str(typ), f"{where}: outputs.{name}") for name, typ in outputs_raw.items()}

    batch_size = raw.get("batch_size", 1024)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise BundleError(f"{where}: batch_size must be a positive integer, got {batch_size!r}")
    device = raw.get("device", "auto")
    if device not in DEVICES:
        raise BundleError(f'{where}: device "{device}" is not one of {", ".join(DEVICES)}')

    transforms = tuple(parse_transforms(raw.get("transforms", []), where))
    produced: set[str] = set()
    for t in transforms:
        produced.update(t.output_columns())
    clash = sorted(set(outputs) & produced)
    if clash:
        raise BundleError(f'{where}: output "{clash[0]}" is also written by a transform')

    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise BundleError(f"{where}: options must be a table")
    return Bundle(
        path=folder, kind=kind, artifact=artifact, features=tuple(features), outputs=outputs,
        transforms=transforms, batch_size=batch_size, device=device, method=method,
        entrypoint=entrypoint, options=options, name=str(raw.get("name", folder.name)),
    )


def _require(raw: Mapping[str, Any], name: str, typ: type, where: str) -> Any:
    if name not in raw:
        raise BundleError(f'{where}: missing field "{name}"')
    value = raw[name]
    if not isinstance(value, typ):
        raise BundleError(f'{where}: field "{name}" must be a {typ.__name__}, got {type(value).__name__}')
    return value
