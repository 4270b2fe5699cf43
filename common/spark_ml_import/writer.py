"""Writes an import's bundle folder: ``bundle.toml``, ``predictor.json`` and the import reports.

Everything is written into a staging folder beside the destination and renamed into place, so a
failed import leaves nothing behind and an existing bundle is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common.errors import BundleError
from common.spark_ml_import.plan import Plan
from common.spec.toml import dump_toml

ARTIFACT = "predictor.json"
BATCH_SIZE = 4096


def render_bundle(plan: Plan, legacy_pipeline: str, name: str) -> str:
    """bundle.toml: the bundle's fields, then each stage's transforms under a comment naming it."""
    head = {
        "name": name,
        "kind": "spark_ml",
        "artifact": ARTIFACT,
        "legacy_pipeline": legacy_pipeline,
        "batch_size": BATCH_SIZE,
        "device": "auto",
        "features": plan.features,
        "outputs": plan.outputs,
    }
    if plan.parity:  # where Spark's arithmetic cannot be reproduced bit for bit; a job's [parity] wins
        head["parity"] = plan.parity
    parts = [
        "# Imported from a Spark ML PipelineModel by `batch-predict import-pipeline`; see import_report.md.\n"
        + dump_toml(head)
    ]
    for comment, transforms in plan.blocks:
        if transforms:
            parts.append(f"# {comment}\n" + dump_toml({"transforms": transforms}).lstrip("\n"))
    return "\n".join(parts)


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
