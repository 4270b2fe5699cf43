"""``batch-predict import-pipeline``: a saved Spark ML PipelineModel becomes a bundle.

Feature stages become transforms, the predictor stage a ``spark_ml`` artifact evaluated in torch,
IndexToString on the prediction a string output; the bundle names the original pipeline
(``legacy_pipeline``) so that the ``legacy`` backend can run it and ``batch-predict parity`` can
compare every side with it. One converter per stage class (``features.py``, ``predictors.py``);
anything unsupported is one ``BundleError`` naming the stage, and nothing is written. It reads the
saved folder's JSON and Parquet files itself, so it needs no pyspark and no Spark session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.errors import BundleError
from common.spark_ml_import import features as _features  # noqa: F401  (registers converters)
from common.spark_ml_import import predictors as _predictors  # noqa: F401
from common.spark_ml_import.plan import CONVERTERS, Plan, check_params, supported_classes
from common.spark_ml_import.saved import SavedStage, read_pipeline
from common.spark_ml_import.writer import write_bundle


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: the bundle folder and a one-line summary."""

    bundle: Path
    plan: Plan

    def summary(self) -> str:
        p = self.plan
        return (
            f"imported {len(p.report)} stages -> {len(p.transforms)} transforms, {len(p.features)} features, "
            f"outputs {', '.join(p.outputs)} -> {self.bundle} (see import_report.md)"
        )


def plan_import(stages: list[SavedStage]) -> Plan:
    """Converts the stages in order; BundleError for anything the importer cannot reproduce."""
    plan = Plan()
    for stage in stages:
        registration = CONVERTERS.get(stage.short_class)
        if registration is None:
            raise BundleError(
                f"{stage.describe()} is not supported (class {stage.cls}); "
                f"supported: {', '.join(supported_classes())}"
            )
        check_params(stage, registration)
        if registration.role == "predictor" and plan.predictor is not None:
            raise BundleError(f"{stage.describe()}: a second predictor stage; a bundle holds one model")
        if registration.role == "feature" and plan.predictor is not None:
            raise BundleError(
                f"{stage.describe()}: a feature stage after the predictor is not supported "
                "(only IndexToString on the prediction may follow it)"
            )
        registration.convert(stage, plan)
    if plan.predictor is None:
        raise BundleError(
            f"pipeline has no predictor stage; supported predictors: {', '.join(_predictor_classes())}"
        )
    return plan


def import_pipeline(
    pipeline_dir: str | Path, bundle_dir: str | Path, overwrite: bool = False
) -> ImportResult:
    """Imports the PipelineModel saved in ``pipeline_dir`` as a bundle in ``bundle_dir``."""
    pipeline_dir, bundle_dir = Path(pipeline_dir), Path(bundle_dir)
    stages = read_pipeline(pipeline_dir)
    try:
        plan = plan_import(stages)
    except BundleError as exc:
        raise BundleError(f"pipeline {pipeline_dir}: {exc}") from None
    write_bundle(plan, pipeline_dir, bundle_dir, overwrite)
    return ImportResult(bundle_dir.resolve(), plan)


def _predictor_classes() -> list[str]:
    return sorted(c for c, r in CONVERTERS.items() if r.role == "predictor")
