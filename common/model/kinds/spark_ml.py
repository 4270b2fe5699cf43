"""``kind = "spark_ml"``: a Spark ML predictor stage, imported by ``batch-predict import-pipeline``,
evaluated in torch (float64, on the bundle's device) with Spark's own formulas.

The artifact (``predictor.json``) holds the stage's parameters exactly as Spark saved them
(coefficients, tree nodes, thresholds) and which output column plays which role. The arithmetic
follows Spark 4's code path by path (``org.apache.spark.ml.classification`` / ``regression``):

- sums run left to right, as Spark's loops do (tree votes, a sparse vector's dot product), so
  tree models are bit-identical to Spark;
- a dense dot product in Spark is ``dev.ludovic.netlib`` ``VectorBLAS.ddot``: fused multiply-adds
  over SIMD lanes, then a lane reduction, an order that depends on the JVM's vector width. Here it
  is a left-to-right sum, so linear margins and GBT margins can differ in the last bits, and
  ``exp`` (Java's intrinsic vs torch's) can differ by an ulp. The importer declares the measured
  bound in the bundle's ``[parity]`` defaults.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa

from common.errors import BundleError, InputError
from common.model.handler import ModelHandler

#: the distributions whose versions can change this kind's results (a parity certificate records them):
#: the predictor's arithmetic runs in torch
LIBRARIES = ("torch",)

FORMAT = "batch-predict/spark-ml-predictor/1"
MODELS = (
    "logistic_regression",
    "linear_regression",
    "decision_tree_classifier",
    "decision_tree_regressor",
    "random_forest_classifier",
    "random_forest_regressor",
    "gbt_classifier",
    "gbt_regressor",
)
CLASSIFIERS = tuple(m for m in MODELS if m.endswith("classifier") or m == "logistic_regression")
ROLE_TYPES = {
    "raw_prediction": pa.list_(pa.float64()),
    "probability": pa.list_(pa.float64()),
    "prediction": pa.float64(),
    "label": pa.string(),
}


def read_artifact(path, where: str) -> dict[str, Any]:
    """Reads and checks ``predictor.json``; BundleError names the file and field."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{where}: cannot read {path.name}: {exc}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise BundleError(f'{where}: {path.name} is not a Spark ML predictor (format "{FORMAT}")')
    if spec.get("model") not in MODELS:
        raise BundleError(
            f'{where}: {path.name}: model "{spec.get("model")}" is not one of {", ".join(MODELS)}'
        )
    roles = spec.get("outputs")
    if not isinstance(roles, dict) or not roles or set(roles) - set(ROLE_TYPES):
        raise BundleError(
            f"{where}: {path.name}: outputs must map roles ({', '.join(ROLE_TYPES)}) to column names"
        )
    if spec["model"] not in CLASSIFIERS and set(roles) - {"prediction"}:
        raise BundleError(f"{where}: {path.name}: a {spec['model']} has only a prediction output")
    if "label" in roles and not spec.get("labels"):
        raise BundleError(f"{where}: {path.name}: a label output needs labels (IndexToString)")
    return spec


class SparkMLHandler(ModelHandler):
    """Runs an imported Spark ML predictor on the float64 feature matrix (null -> NaN)."""

    numeric_features = True

    def validate(self) -> None:
        super().validate()
        spec = read_artifact(self.bundle.artifact, f"bundle {self.bundle.path}")
        where = f"bundle {self.bundle.path}"
        if len(self.bundle.features) != spec["num_features"]:
            raise BundleError(
                f"{where}: features lists {len(self.bundle.features)} columns but the {spec['model']} "
                f"reads {spec['num_features']}"
            )
        declared = dict(self.bundle.outputs)
        for role, column in spec["outputs"].items():
            if declared.get(column) != ROLE_TYPES[role]:
                raise BundleError(
                    f"{where}: outputs.{column} must be {ROLE_TYPES[role]} (the model's {role})"
                )
        extra = sorted(set(declared) - set(spec["outputs"].values()))
        if extra:
            raise BundleError(f"{where}: outputs.{extra[0]} is not produced by the {spec['model']}")

    def load_model(self) -> SparkPredictor:
        return SparkPredictor(read_artifact(self.bundle.artifact, f"bundle {self.bundle.path}"), self.device)

    def run_inference(self, batch, model: SparkPredictor) -> dict[str, Any]:
        import torch

        features = batch.matrix(list(self.bundle.features), dtype=torch.float64)
        return model.predict(features)


class SparkPredictor:
    """One Spark ML predictor's parameters as tensors on ``device``, and its ``transform``.

    Args:
        spec: the checked ``predictor.json``.
        device: the model's device.
    """

    def __init__(self, spec: dict[str, Any], device):
        import torch

        from common.model.trees import Tree, TreeEnsemble

        self.spec = spec
        self.model = spec["model"]
        self.device = torch.device(device)
        self.roles = spec["outputs"]
        self.thresholds = spec.get("thresholds")
        as64 = lambda values: torch.tensor(values, dtype=torch.float64, device=self.device)  # noqa: E731
        if self.model in ("logistic_regression", "linear_regression"):
            self.coefficients = as64(spec["coefficients"])  # (sets, features)
            self.intercepts = as64(spec["intercepts"])
            return
        trees = [
            Tree(
                feature=np.asarray(t["feature"], dtype=np.int64),
                threshold=np.asarray(t["threshold"], dtype=np.float64),
                left=np.asarray(t["left"], dtype=np.int64),
                right=np.asarray(t["right"], dtype=np.int64),
                categories=t["categories"],
                num_categories=np.asarray(t["num_categories"], dtype=np.int64),
            )
            for t in spec["trees"]
        ]
        self.ensemble = TreeEnsemble(trees, self.device)
        if self.model.endswith("classifier") and not self.model.startswith("gbt"):
            stats = [np.asarray(t["stats"], dtype=np.float64) for t in spec["trees"]]
            self.leaf_stats = as64(np.concatenate(stats))  # (all nodes, classes)
            totals = [_sequential_sum(s) for s in stats]
            # Each tree's vote: its leaf's class counts / their total (0 where the total is 0).
            votes = [
                np.where(t[:, None] != 0, s / np.where(t == 0, 1, t)[:, None], 0.0)
                for s, t in zip(stats, totals, strict=True)
            ]
            self.leaf_votes = as64(np.concatenate(votes))
        self.leaf_prediction = as64(np.concatenate([t["prediction"] for t in spec["trees"]]))
        self.tree_weights = as64(spec.get("tree_weights") or [1.0] * len(trees))

    # ---- the stage's outputs -----------------------------------------------------------------

    def predict(self, x) -> dict[str, Any]:
        """Spark's output columns for the float64 feature matrix ``x``: name -> tensor or Arrow array."""
        if self.model in CLASSIFIERS:
            raw, probability, prediction = self._classify(x)
        else:
            raw = probability = None
            prediction = self._regress(x)
        values = {"raw_prediction": raw, "probability": probability, "prediction": prediction}
        out: dict[str, Any] = {}
        for role, column in self.roles.items():
            if role == "label":
                out[column] = self._labels(prediction)
            elif role == "prediction":
                out[column] = prediction
            else:
                out[column] = _list_array(values[role])
        return out

    def _regress(self, x):
        if self.model == "linear_regression":
            return self._margins(x)[:, 0]
        predictions = self.leaf_prediction[self.ensemble.leaves(x)]  # (rows, trees)
        if self.model == "decision_tree_regressor":
            return predictions[:, 0]
        if self.model == "random_forest_regressor":  # trees.map(_.prediction).sum / numTrees
            return _ordered_sum(predictions) / len(self.spec["trees"])
        return self._gbt_margin(predictions)

    def _classify(self, x):
        import torch

        if self.model == "logistic_regression":
            margins = self._margins(x)
            if self._binary_lr:  # rawPrediction (-m, m); probability from raw(0), then 1 - p0
                m = margins[:, 0]
                raw = torch.stack([-m, m], dim=1)
                p0 = 1.0 / (1.0 + torch.exp(-raw[:, 0]))
                probability = torch.stack([p0, 1.0 - p0], dim=1)
            else:
                raw, probability = margins, _softmax(margins)
        elif self.model == "gbt_classifier":
            margin = self._gbt_margin(self.leaf_prediction[self.ensemble.leaves(x)])
            raw = torch.stack([-margin, margin], dim=1)
            p0 = 1.0 / (1.0 + torch.exp(-2.0 * raw[:, 0]))  # LogLoss.computeProbability(raw(0))
            probability = torch.stack([p0, 1.0 - p0], dim=1)
        else:
            leaves = self.ensemble.leaves(x)
            if self.model == "decision_tree_classifier":
                raw = self.leaf_stats[leaves[:, 0]]
            else:  # votes(i) += counts(i) / total, tree by tree
                raw = _ordered_sum(self.leaf_votes[leaves])
            probability = raw / _ordered_sum(raw)[:, None]  # normalizeToProbabilitiesInPlace
        return raw, probability, self._prediction(x, raw, probability)

    def _prediction(self, x, raw, probability):
        """ProbabilisticClassificationModel.transform: the prediction comes from rawPrediction when
        that column is written, else from probability, else from ``predict(features)``."""
        if "raw_prediction" in self.roles:
            return self._raw2prediction(raw, probability)
        if "probability" in self.roles:
            return self._probability2prediction(probability)
        if self.model == "decision_tree_classifier":  # predict(): the leaf's own prediction
            return self.leaf_prediction[self.ensemble.leaves(x)[:, 0]]
        if self._binary_lr:  # predict(): score = 1 / (1 + exp(-margin)) > threshold
            import torch

            score = 1.0 / (1.0 + torch.exp(-raw[:, 1]))
            return (score > self._binary_thresholds()[0]).to(raw.dtype)
        if self.model == "gbt_classifier" and self.thresholds is None:
            return (raw[:, 1] > 0.0).to(raw.dtype)
        return self._raw2prediction(raw, probability)

    def _raw2prediction(self, raw, probability):
        if self._binary_lr:
            return (raw[:, 1] > self._binary_thresholds()[1]).to(raw.dtype)
        if self.thresholds is None:
            return _argmax(raw)
        return _argmax_scaled(probability, self.thresholds)

    def _probability2prediction(self, probability):
        if self._binary_lr:
            return (probability[:, 1] > self._binary_thresholds()[0]).to(probability.dtype)
        if self.thresholds is None:
            return _argmax(probability)
        return _argmax_scaled(probability, self.thresholds)

    @property
    def _binary_lr(self) -> bool:
        return self.model == "logistic_regression" and not self.spec["multinomial"]

    def _binary_thresholds(self) -> tuple[float, float]:
        """LogisticRegressionModel's (threshold, log(t / (1 - t))) for probability and raw margins."""
        if self.thresholds is not None:
            t = 1.0 / (1.0 + self.thresholds[0] / self.thresholds[1])
        else:
            t = self.spec["threshold"]
        if t == 0.0:
            return t, -math.inf
        if t == 1.0:
            return t, math.inf
        return t, math.log(t / (1.0 - t))

    def _margins(self, x):
        """Linear margins, (rows, sets): Spark's order for a sparse feature vector, a left-to-right
        sum over the features, then the intercept added (``BLAS.dot`` + intercept, ``gemv``)."""
        import torch

        coefficients = self.coefficients
        total = torch.zeros((x.shape[0], coefficients.shape[0]), dtype=torch.float64, device=x.device)
        for j in range(coefficients.shape[1]):
            total = total + x[:, j : j + 1] * coefficients[:, j]
        return total + self.intercepts

    def _gbt_margin(self, predictions):
        """BLAS ddot of the trees' predictions and weights; left to right here (see the module doc)."""
        import torch

        total = torch.zeros(predictions.shape[0], dtype=torch.float64, device=predictions.device)
        for t in range(predictions.shape[1]):
            total = total + predictions[:, t] * self.tree_weights[t]
        return total

    def _labels(self, prediction) -> pa.Array:
        """IndexToString on the prediction: labels[int(p)], Spark's error for anything else."""
        labels = self.spec["labels"]
        values = prediction.detach().cpu().numpy()
        index = np.trunc(np.where(np.isfinite(values), values, -1.0))
        bad = ~np.isfinite(values) | (index < 0) | (index >= len(labels))
        if bad.any():
            raise InputError(f"IndexToString: unseen index {values[bad][0]!r} (labels has {len(labels)})")
        return pa.array(np.asarray(labels, dtype=object)[index.astype(np.int64)], type=pa.string())


def _ordered_sum(terms):
    from common.model.trees import ordered_sum

    return ordered_sum(terms)


def _sequential_sum(stats: np.ndarray) -> np.ndarray:
    total = stats[:, 0].copy()
    for i in range(1, stats.shape[1]):
        total = total + stats[:, i]
    return total


def _softmax(margins):
    """ml.impl.Utils.softmax: max over the margins (a +inf wins outright), exp(m - max), then a
    multiplication by 1 / (their left-to-right sum)."""
    import torch

    top = torch.full_like(margins[:, 0], -1.7976931348623157e308)
    for k in range(margins.shape[1]):
        top = torch.where(margins[:, k] > top, margins[:, k], top)
    exps = torch.exp(margins - top[:, None])
    probability = exps * (1.0 / _ordered_sum(exps))[:, None]
    infinite = torch.isposinf(margins)
    if bool(infinite.any()):
        first = infinite.to(torch.int64).argmax(dim=1)
        one_hot = torch.nn.functional.one_hot(first, margins.shape[1]).to(margins.dtype)
        probability = torch.where(infinite.any(dim=1)[:, None], one_hot, probability)
    return probability


def _argmax(values):
    """DenseVector.argmax: the first index whose value beats every earlier one (NaN never does)."""
    import torch

    best = values[:, 0]
    index = torch.zeros_like(best)
    for k in range(1, values.shape[1]):
        better = values[:, k] > best
        best = torch.where(better, values[:, k], best)
        index = torch.where(better, torch.full_like(index, float(k)), index)
    return index


def _argmax_scaled(probability, thresholds):
    """probability2prediction with thresholds: argmax of p / t, starting from -inf."""
    import torch

    best = torch.full_like(probability[:, 0], -math.inf)
    index = torch.zeros_like(best)
    for k, t in enumerate(thresholds):
        scaled = probability[:, k] / t if t != 0 else torch.where(probability[:, k] == 0, math.nan, math.inf)
        better = scaled > best
        best = torch.where(better, scaled, best)
        index = torch.where(better, torch.full_like(index, float(k)), index)
    return index


def _list_array(matrix) -> pa.Array:
    """A (rows, k) float64 tensor as a ``list<float64>`` Arrow array without a per-row loop."""
    values = matrix.detach().cpu().contiguous().numpy()
    rows, width = values.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))
