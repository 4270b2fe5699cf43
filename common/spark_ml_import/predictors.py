"""Converters for Spark ML predictor stages (the ``spark_ml`` bundle kind's ``predictor.json``) and
for IndexToString on the prediction.

The artifact carries the fitted parameters exactly as saved (Parquet doubles), the classifier's
threshold(s) and which output column plays which role. ``[parity]`` defaults are declared per
output where Spark's arithmetic cannot be reproduced bit for bit (``common/model/kinds/spark_ml.py``).
"""

from __future__ import annotations

from typing import Any

from common.errors import BundleError
from common.model.kinds.spark_ml import FORMAT
from common.spark_ml_import.features import spark_double
from common.spark_ml_import.plan import Plan, converter, unsupported
from common.spark_ml_import.saved import SavedStage, matrix_values, vector_values

PREDICTOR_IO = ("featuresCol", "predictionCol", "leafCol")
CLASSIFIER_IO = (*PREDICTOR_IO, "rawPredictionCol", "probabilityCol", "thresholds")
LIST_TYPE, DOUBLE = "list<float64>", "float64"

# Tolerances declared (a job's [parity] overrides them) for the outputs Spark computes with a dense
# dot product (dev.ludovic.netlib VectorBLAS: fused multiply-adds over SIMD lanes, an order that
# depends on the CPU) and Java's Math.exp; tree votes, leaf values and everything else are exact.
# Measured on the test pipelines (tests/test_spark_ml_pipelines.py): at most 22 ulps on margins,
# 93 ulps (3.3e-16) on probabilities near 0, and 1.1e-14 absolute on a margin near 0 (cancellation
# makes ulps meaningless there). A pair is equal when any criterion holds.
DECLARED = {
    "raw_prediction": {"ulps": 64, "abs": 1e-12},
    "probability": {"ulps": 64, "abs": 1e-14},
    "prediction": {"ulps": 64, "abs": 1e-12},
}


def _model_spec(stage: SavedStage, plan: Plan, model: str, num_classes: int | None) -> dict[str, Any]:
    p = stage.params
    if p.get("leafCol"):
        raise unsupported(stage, "leafCol", p["leafCol"], "leaf indices are not imported")
    features = plan.vector(stage, p["featuresCol"]).slots
    num_features = stage.metadata.get("numFeatures")
    if num_features is not None and num_features != len(features):
        raise BundleError(
            f"{stage.describe()}: the model reads {num_features} features but its input has {len(features)}"
        )
    roles = {}
    if num_classes is not None:
        for role, param in (("raw_prediction", "rawPredictionCol"), ("probability", "probabilityCol")):
            if p.get(param):
                roles[role] = p[param]
    if p.get("predictionCol"):
        roles["prediction"] = p["predictionCol"]
    if not roles:
        raise BundleError(f"{stage.describe()}: writes no output column")
    thresholds = None
    if num_classes is not None and "thresholds" in p:
        thresholds = [spark_double(t) for t in p["thresholds"]]
        if len(thresholds) != num_classes:
            raise BundleError(f"{stage.describe()}: {len(thresholds)} thresholds for {num_classes} classes")
    plan.features = list(features)
    return {
        "format": FORMAT,
        "stage": {"uid": stage.uid, "class": stage.cls},
        "model": model,
        "num_features": len(features),
        "num_classes": num_classes,
        "thresholds": thresholds,
        "outputs": roles,
    }


def _finish(
    stage: SavedStage, plan: Plan, spec: dict[str, Any], became: str, inexact: tuple[str, ...]
) -> None:
    plan.predictor = spec
    for role, column in spec["outputs"].items():
        plan.outputs[column] = DOUBLE if role == "prediction" else LIST_TYPE
    declared = {spec["outputs"][role]: DECLARED[role] for role in inexact if role in spec["outputs"]}
    if declared:
        plan.parity = {"columns": declared}
    plan.add(stage, became, [], list(spec["outputs"].values()))


@converter("LogisticRegressionModel", reads=(*CLASSIFIER_IO, "threshold"), role="predictor")
def logistic_regression(stage: SavedStage, plan: Plan) -> None:
    row = stage.first_row()
    if "coefficientMatrix" not in row:
        raise BundleError(
            f"{stage.describe()}: saved in a pre-2.1 layout (no coefficientMatrix); "
            "re-save it with Spark 3 or 4"
        )
    coefficients, _ = matrix_values(row["coefficientMatrix"])
    multinomial = bool(row["isMultinomial"])
    spec = _model_spec(stage, plan, "logistic_regression", int(row["numClasses"]))
    spec.update(
        coefficients=coefficients.tolist(),
        intercepts=vector_values(row["interceptVector"]).tolist(),
        multinomial=multinomial,
        threshold=spark_double(stage.params.get("threshold", 0.5)),
    )
    kind = "multinomial" if multinomial else "binary"
    _finish(
        stage, plan, spec, f"predictor.json ({kind} logistic regression)", ("raw_prediction", "probability")
    )


@converter("LinearRegressionModel", reads=PREDICTOR_IO, role="predictor")
def linear_regression(stage: SavedStage, plan: Plan) -> None:
    row = stage.first_row()
    spec = _model_spec(stage, plan, "linear_regression", None)
    spec.update(
        coefficients=[vector_values(row["coefficients"]).tolist()], intercepts=[float(row["intercept"])]
    )
    _finish(stage, plan, spec, "predictor.json (linear regression)", ("prediction",))


def _tree(nodes: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """One tree's saved nodes (ids 0..n-1, root 0) as the artifact's parallel arrays."""
    nodes = sorted(nodes, key=lambda n: n["id"])
    if [n["id"] for n in nodes] != list(range(len(nodes))):
        raise BundleError(f"{where}: tree node ids are not 0..{len(nodes) - 1}")
    categories, thresholds = [], []
    for n in nodes:
        split = n["split"]
        leaf = n["leftChild"] < 0
        categorical = not leaf and split["numCategories"] >= 0
        categories.append(list(split["leftCategoriesOrThreshold"]) if categorical else None)
        thresholds.append(0.0 if leaf or categorical else float(split["leftCategoriesOrThreshold"][0]))
    return {
        "feature": [max(n["split"]["featureIndex"], 0) for n in nodes],
        "threshold": thresholds,
        "left": [n["leftChild"] for n in nodes],
        "right": [n["rightChild"] for n in nodes],
        "categories": categories,
        "num_categories": [n["split"]["numCategories"] for n in nodes],
        "prediction": [float(n["prediction"]) for n in nodes],
        "stats": [list(map(float, n["impurityStats"])) for n in nodes],
    }


def _trees(stage: SavedStage) -> tuple[list[dict[str, Any]], list[float]]:
    data = stage.data()
    if "treeID" not in data.column_names:  # a single decision tree: its nodes are the rows
        return [_tree(data.to_pylist(), stage.describe())], [1.0]
    by_tree: dict[int, list] = {}
    tree_ids, nodes = data.column("treeID").to_pylist(), data.column("nodeData").to_pylist()
    for tree_id, node in zip(tree_ids, nodes, strict=True):
        by_tree.setdefault(tree_id, []).append(node)
    meta = stage.data("treesMetadata").sort_by("_1")
    weights = [float(w) for w in meta.column("_3").to_pylist()]
    ids = meta.column("_1").to_pylist()
    if ids != sorted(by_tree) or ids != list(range(len(ids))):
        raise BundleError(f"{stage.describe()}: tree ids in data and treesMetadata do not match")
    return [_tree(by_tree[i], f"{stage.describe()} tree {i}") for i in ids], weights


def _tree_model(
    stage: SavedStage, plan: Plan, model: str, num_classes: int | None, inexact: tuple[str, ...]
) -> None:
    spec = _model_spec(stage, plan, model, num_classes)
    trees, weights = _trees(stage)
    spec.update(trees=trees, tree_weights=weights)
    if num_classes is not None and not model.startswith("gbt"):
        widths = {len(s) for t in trees for s in t["stats"]}
        if widths != {num_classes}:
            raise BundleError(
                f"{stage.describe()}: leaf class counts have {sorted(widths)} entries "
                f"for {num_classes} classes"
            )
    nodes = sum(len(t["left"]) for t in trees)
    _finish(stage, plan, spec, f"predictor.json ({model}, {len(trees)} trees, {nodes} nodes)", inexact)


def _num_classes(stage: SavedStage) -> int:
    value = stage.metadata.get("numClasses")
    if not isinstance(value, int) or value < 2:
        raise BundleError(f"{stage.describe()}: numClasses missing from its metadata")
    return value


@converter("DecisionTreeClassificationModel", reads=CLASSIFIER_IO, role="predictor")
def decision_tree_classifier(stage: SavedStage, plan: Plan) -> None:
    _tree_model(stage, plan, "decision_tree_classifier", _num_classes(stage), ())


@converter("RandomForestClassificationModel", reads=CLASSIFIER_IO, role="predictor")
def random_forest_classifier(stage: SavedStage, plan: Plan) -> None:
    _tree_model(stage, plan, "random_forest_classifier", _num_classes(stage), ())


@converter("GBTClassificationModel", reads=(*CLASSIFIER_IO, "lossType"), role="predictor")
def gbt_classifier(stage: SavedStage, plan: Plan) -> None:
    if stage.params.get("lossType", "logistic") != "logistic":
        raise unsupported(stage, "lossType", stage.params["lossType"], 'only "logistic" exists in Spark')
    _tree_model(stage, plan, "gbt_classifier", 2, ("raw_prediction", "probability"))


@converter("DecisionTreeRegressionModel", reads=(*PREDICTOR_IO, "varianceCol"), role="predictor")
def decision_tree_regressor(stage: SavedStage, plan: Plan) -> None:
    if stage.params.get("varianceCol"):
        raise unsupported(
            stage, "varianceCol", stage.params["varianceCol"], "the leaf variance output is not imported"
        )
    _tree_model(stage, plan, "decision_tree_regressor", None, ())


@converter("RandomForestRegressionModel", reads=PREDICTOR_IO, role="predictor")
def random_forest_regressor(stage: SavedStage, plan: Plan) -> None:
    _tree_model(stage, plan, "random_forest_regressor", None, ())


@converter("GBTRegressionModel", reads=(*PREDICTOR_IO, "lossType"), role="predictor")
def gbt_regressor(stage: SavedStage, plan: Plan) -> None:
    _tree_model(stage, plan, "gbt_regressor", None, ("prediction",))


@converter("IndexToString", reads=("inputCol", "outputCol", "labels"), role="post")
def index_to_string(stage: SavedStage, plan: Plan) -> None:
    spec = plan.predictor
    source, target = stage.params.get("inputCol"), stage.params.get("outputCol")
    if spec is None or spec["outputs"].get("prediction") != source:
        raise BundleError(
            f"{stage.describe()}: IndexToString is imported only on the predictor's prediction column"
        )
    labels = stage.params.get("labels")
    if not labels:
        raise unsupported(
            stage, "labels", labels, "set labels explicitly (labels from column metadata are not imported)"
        )
    if "label" in spec["outputs"]:
        raise BundleError(f"{stage.describe()}: a second IndexToString on the prediction")
    spec["outputs"]["label"] = target
    spec["labels"] = list(labels)
    plan.outputs[target] = "string"
    plan.add(stage, f"label output of {len(labels)} labels (in predictor.json)", [], [target])
