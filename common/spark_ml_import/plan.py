"""What an import builds, and the registry of stage converters (one small function per class).

Converters walk the pipeline in order over a column environment: each Spark column a stage writes
is either a scalar column or a vector held as one scalar column per slot (``<name>[<i>]``), so
the bundle's transforms stay single-column ops and the predictor's features are the slots of its
``featuresCol``. A stage or parameter no converter understands is refused (``BundleError``,
naming the stage's uid and class), never approximated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import BundleError
from common.spark_ml_import.saved import SavedStage

# Parameters that shape training only; a fitted stage's transform never reads them.
TRAINING_ONLY = frozenset(
    {
        "labelCol",
        "weightCol",
        "maxIter",
        "regParam",
        "elasticNetParam",
        "tol",
        "fitIntercept",
        "standardization",
        "aggregationDepth",
        "family",
        "lowerBoundsOnCoefficients",
        "upperBoundsOnCoefficients",
        "lowerBoundsOnIntercepts",
        "upperBoundsOnIntercepts",
        "maxBlockSizeInMB",
        "solver",
        "loss",
        "epsilon",
        "maxDepth",
        "maxBins",
        "minInstancesPerNode",
        "minWeightFractionPerNode",
        "minInfoGain",
        "maxMemoryInMB",
        "cacheNodeIds",
        "checkpointInterval",
        "impurity",
        "seed",
        "subsamplingRate",
        "featureSubsetStrategy",
        "numTrees",
        "bootstrap",
        "stepSize",
        "validationTol",
        "validationIndicatorCol",
        "strategy",
        "relativeError",
        "stringOrderType",
        "pruneTree",
    }
)


@dataclass(frozen=True)
class Vector:
    """A Spark vector column, as the scalar columns of its slots (and whether each came from a
    scalar input of a VectorAssembler, which matters for its handleInvalid)."""

    slots: tuple[str, ...]


@dataclass
class StageReport:
    """One row of import_report: what a stage became."""

    uid: str
    cls: str
    became: str
    transforms: int = 0
    columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "class": self.cls,
            "became": self.became,
            "transforms": self.transforms,
            "columns": self.columns,
        }


@dataclass
class Plan:
    """The bundle under construction.

    Attributes:
        vectors: Spark vector columns made so far, by name (any other column is a scalar).
        blocks: per stage, a comment and its transform tables, in order.
        predictor: the predictor artifact (``predictor.json``), once its stage is converted.
        features: the predictor's feature columns (its ``featuresCol`` slots).
        outputs: output column -> Arrow type text.
        parity: the declared tolerances (``[parity]`` of bundle.toml).
        report: one entry per stage.
    """

    vectors: dict[str, Vector] = field(default_factory=dict)
    blocks: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    predictor: dict[str, Any] | None = None
    features: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    report: list[StageReport] = field(default_factory=list)
    written: set[str] = field(default_factory=set)

    def add(
        self, stage: SavedStage, became: str, transforms: list[dict[str, Any]], columns: list[str]
    ) -> None:
        """Records a converted stage: its transforms (in order) and the Spark columns it wrote."""
        for name in columns:
            if name in self.written:
                raise BundleError(
                    f'{stage.describe()}: output column "{name}" is written twice in the pipeline'
                )
            self.written.add(name)
        comment = f"{stage.uid} ({stage.short_class}): {became}"
        self.blocks.append((comment, transforms))
        self.report.append(StageReport(stage.uid, stage.cls, became, len(transforms), list(columns)))

    @property
    def transforms(self) -> list[dict[str, Any]]:
        return [t for _, block in self.blocks for t in block]

    def vector(self, stage: SavedStage, name: str) -> Vector:
        """The vector column ``name``, which must have been made by an earlier stage."""
        if name not in self.vectors:
            raise BundleError(
                f'{stage.describe()}: input column "{name}" must be a vector made by an earlier stage '
                "(a vector read from the input data is not supported)"
            )
        return self.vectors[name]


Converter = Callable[[SavedStage, Plan], None]


@dataclass(frozen=True)
class Registration:
    convert: Converter
    reads: frozenset[str]
    role: str  # "feature", "predictor" or "post" (after the predictor)


CONVERTERS: dict[str, Registration] = {}


def converter(*classes: str, reads: tuple[str, ...], role: str = "feature"):
    """Registers a converter for Spark ML classes (short names, e.g. ``StringIndexerModel``),
    with the parameters it reads; every other parameter must be training-only."""

    def register(fn: Converter) -> Converter:
        for cls in classes:
            CONVERTERS[cls] = Registration(fn, frozenset(reads), role)
        return fn

    return register


def supported_classes() -> list[str]:
    return sorted(CONVERTERS)


def unsupported(stage: SavedStage, param: str, value: Any, reason: str) -> BundleError:
    return BundleError(f"{stage.describe()}: parameter {param} = {value!r} is not supported: {reason}")


def check_params(stage: SavedStage, registration: Registration) -> None:
    """Refuses a parameter the converter does not read and that is not training-only."""
    for name in sorted(stage.params):
        if name not in registration.reads and name not in TRAINING_ONLY:
            raise unsupported(stage, name, stage.params[name], "the importer does not know what it changes")


def in_out_columns(
    stage: SavedStage, single: str = "inputCol", many: str = "inputCols"
) -> list[tuple[str, str]]:
    """(input, output) column pairs of a stage that takes inputCol/outputCol or inputCols/outputCols."""
    p = stage.params
    if many in stage.set_params or (many in p and single not in stage.set_params):
        inputs, outputs = p.get(many) or [], p.get("outputCols") or []
    else:
        inputs, outputs = [p.get(single)], [p.get("outputCol")]
    if not inputs or len(inputs) != len(outputs) or not all(inputs) or not all(outputs):
        raise BundleError(f"{stage.describe()}: needs matching input and output columns")
    return list(zip(inputs, outputs, strict=True))
