"""Writes an import's bundle folder: ``bundle.toml``, ``predictor.json`` and the import reports.

Everything is written into a staging folder beside the destination and renamed into place, so a
failed import leaves nothing behind and an existing bundle is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common.errors import BundleError
from spark_backend.ml_import.plan import Plan

ARTIFACT = "predictor.json"
BATCH_SIZE = 4096


def toml_value(value: Any) -> str:
    """One TOML value: strings, bools, ints, floats (shortest round-trip text, inf and nan), lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def render_bundle(plan: Plan, legacy_pipeline: str, name: str) -> str:
    lines = [
        "# Imported from a Spark ML PipelineModel by `batch-predict import-pipeline`; see import_report.md.",
        f"name = {toml_value(name)}",
        'kind = "spark_ml"',
        f"artifact = {toml_value(ARTIFACT)}",
        f"legacy_pipeline = {toml_value(legacy_pipeline)}",
        f"batch_size = {BATCH_SIZE}",
        'device = "auto"',
        f"features = {toml_value(plan.features)}",
        "",
        "[outputs]",
        *[f"{toml_key(column)} = {toml_value(typ)}" for column, typ in plan.outputs.items()],
    ]
    if plan.parity:
        lines += [
            "",
            "# Where Spark's arithmetic cannot be reproduced bit for bit (a job's [parity] overrides it).",
        ]
        for column, tolerance in plan.parity["columns"].items():
            lines += ["", f"[parity.columns.{toml_key(column)}]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in tolerance.items()]
    for comment, transforms in plan.blocks:
        if not transforms:
            continue
        lines += ["", f"# {comment}"]
        for t in transforms:
            lines += ["[[transforms]]", *[f"{toml_key(k)} = {toml_value(v)}" for k, v in t.items()]]
    return "\n".join(lines) + "\n"


def render_report(plan: Plan, pipeline: str) -> tuple[str, dict[str, Any]]:
    data = {
        "pipeline": pipeline,
        "stages": [r.to_dict() for r in plan.report],
        "features": len(plan.features),
        "transforms": len(plan.transforms),
        "outputs": plan.outputs,
        "parity": plan.parity,
    }
    lines = [
        f"# Import report: {pipeline}",
        "",
        f"{len(plan.report)} stages -> {len(plan.transforms)} transforms, "
        f"{len(plan.features)} model features, "
        f"outputs {', '.join(f'{c} ({t})' for c, t in plan.outputs.items())}.",
        "",
        "| # | uid | class | became | transforms | writes |",
        "|---|---|---|---|---:|---|",
    ]
    for i, r in enumerate(plan.report):
        lines.append(
            f"| {i} | `{r.uid}` | {r.cls.rsplit('.', 1)[-1]} | {r.became} | {r.transforms} | "
            f"{', '.join(f'`{c}`' for c in r.columns)} |"
        )
    if plan.parity:
        lines += [
            "",
            "Declared parity tolerances (Spark's dense dot products and `exp` are not reproduced "
            "bit for bit):",
        ]
        lines += [
            f"- `{c}`: {', '.join(f'{k} = {v}' for k, v in t.items())}"
            for c, t in plan.parity["columns"].items()
        ]
    return "\n".join(lines) + "\n", data


def write_bundle(plan: Plan, pipeline_dir: Path, bundle_dir: Path, overwrite: bool) -> None:
    """Writes the bundle atomically; BundleError if ``bundle_dir`` exists and ``overwrite`` is off."""
    bundle_dir = bundle_dir.resolve()
    if bundle_dir.exists() and not overwrite:
        raise BundleError(f"bundle {bundle_dir} already exists (use --overwrite to replace it)")
    if bundle_dir.exists() and not bundle_dir.is_dir():
        raise BundleError(f"bundle {bundle_dir} exists and is not a folder")
    parent = bundle_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{bundle_dir.name}.import-", dir=parent))
    except OSError as exc:
        raise BundleError(f"bundle {bundle_dir}: cannot write there: {exc}") from None
    try:
        legacy = os.path.relpath(pipeline_dir.resolve(), bundle_dir)
        (stage / "bundle.toml").write_text(render_bundle(plan, legacy, bundle_dir.name))
        (stage / ARTIFACT).write_text(json.dumps(plan.predictor, allow_nan=True))
        markdown, data = render_report(plan, str(pipeline_dir.resolve()))
        (stage / "import_report.md").write_text(markdown)
        (stage / "import_report.json").write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
        if bundle_dir.exists():
            old = parent / f".{bundle_dir.name}.replaced-{os.getpid()}"
            bundle_dir.rename(old)
            stage.rename(bundle_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(bundle_dir)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
