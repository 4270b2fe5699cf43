"""Decision-tree ensembles as one torch program: Hummingbird's tree-traversal strategy.

Every node of every tree lives in flat tensors (feature, threshold, left, right); a leaf points to
itself, so walking ``max_depth`` steps from the roots lands every (row, tree) pair on its leaf
with a few gathers per level, vectorised over rows and trees, on the CPU or the GPU alike.

Splits follow Spark ML exactly (``org.apache.spark.ml.tree``): a continuous split sends a row left
when ``x <= threshold`` (so NaN goes right); a categorical split holds its left categories, and
Spark tests membership in whichever set is smaller (``isLeft = len(left) <= numCategories / 2``),
so a value in neither set (NaN, a fraction, an unseen index) goes right when the left set is
tested and left otherwise. Membership is numeric equality (-0.0 is category 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Tree:
    """One tree in Spark's saved layout: node ``i`` of each array is the node with id ``i``.

    Attributes:
        feature: the split's feature index (ignored at leaves).
        threshold: the continuous split's threshold (ignored at leaves and categorical splits).
        left, right: child node ids, -1 at leaves.
        categories: per node, the left categories of a categorical split, else None.
        num_categories: per node, the categorical feature's arity, -1 for a continuous split.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    categories: Sequence[Sequence[float] | None]
    num_categories: np.ndarray

    @property
    def depth(self) -> int:
        """Edges on the longest root-to-leaf path (0 for a lone leaf)."""
        deepest, todo = 0, [(0, 0)]  # node 0 is the root
        while todo:
            node, depth = todo.pop()
            deepest = max(deepest, depth)
            if self.left[node] >= 0:
                todo += [(int(self.left[node]), depth + 1), (int(self.right[node]), depth + 1)]
        return deepest


class TreeEnsemble:
    """The trees of one model, ready to find each row's leaf in every tree.

    Args:
        trees: the trees, in the model's order.
        device: where the node tensors live (the model's device).
    """

    def __init__(self, trees: Sequence[Tree], device: str | torch.device = "cpu"):
        self.num_trees = len(trees)
        self.device = torch.device(device)
        offsets = np.cumsum([0] + [len(t.left) for t in trees])
        self.offsets = offsets[:-1]
        self.max_depth = max(t.depth for t in trees)
        feature, threshold, left, right, cat_row = [], [], [], [], []
        tables, go_left_default = [], []
        width = max([int(n) for t in trees for n in t.num_categories] + [1])
        for offset, tree in zip(self.offsets, trees, strict=True):
            ids = np.arange(len(tree.left)) + offset
            is_leaf = tree.left < 0
            feature.append(np.where(is_leaf, 0, tree.feature))
            threshold.append(tree.threshold.astype(np.float64))
            left.append(np.where(is_leaf, ids, tree.left + offset))
            right.append(np.where(is_leaf, ids, tree.right + offset))
            rows = np.full(len(tree.left), -1, dtype=np.int64)
            for node, cats in enumerate(tree.categories):
                if cats is None or is_leaf[node]:
                    continue
                arity = int(tree.num_categories[node])
                table = np.zeros(width, dtype=bool)
                table[np.asarray(cats, dtype=np.int64)] = True
                tested_left = len(cats) <= arity // 2
                # A value outside 0..arity-1 is in neither set: right if the left set is tested.
                rows[node] = len(tables)
                tables.append(table)
                go_left_default.append(not tested_left)
            cat_row.append(rows)
        as_tensor = lambda a, dtype: torch.as_tensor(np.concatenate(a), dtype=dtype, device=self.device)  # noqa: E731
        self.feature = as_tensor(feature, torch.int64)
        self.threshold = as_tensor(threshold, torch.float64)
        self.left = as_tensor(left, torch.int64)
        self.right = as_tensor(right, torch.int64)
        self.cat_row = as_tensor(cat_row, torch.int64)
        self.has_categorical = bool(tables)
        self.cat_width = width
        if tables:
            self.cat_table = torch.as_tensor(np.stack(tables), device=self.device)
            self.cat_default = torch.as_tensor(go_left_default, device=self.device)
        self.roots = torch.as_tensor(self.offsets, dtype=torch.int64, device=self.device)

    def leaves(self, x: torch.Tensor) -> torch.Tensor:
        """The global node id of each row's leaf in each tree: (rows, trees), for a float64
        feature matrix (rows, features) on the ensemble's device (NaN for a missing value)."""
        node = self.roots.expand(x.shape[0], self.num_trees)
        for _ in range(self.max_depth):
            values = x.gather(1, self.feature[node])
            go_left = values <= self.threshold[node]
            if self.has_categorical:
                go_left = torch.where(self.cat_row[node] >= 0, self._categorical_left(node, values), go_left)
            node = torch.where(go_left, self.left[node], self.right[node])
        return node

    def _categorical_left(self, node: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        row = self.cat_row[node].clamp(min=0)
        finite = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
        index = finite.to(torch.int64)
        member = (index.to(values.dtype) == values) & (index >= 0) & (index < self.cat_width)
        in_left = self.cat_table[row, index.clamp(0, self.cat_width - 1)]
        return torch.where(member, in_left, self.cat_default[row])


def ordered_sum(terms: torch.Tensor) -> torch.Tensor:
    """Sums (rows, k[, ...]) over k strictly left to right, as a Scala/Java loop does.

    ``torch.sum`` reduces in a blocked order that can differ from a sequential loop in the last
    bit; k tensor additions keep Spark's order exactly and are still vectorised over rows.
    """
    total = terms[:, 0]
    for i in range(1, terms.shape[1]):
        total = total + terms[:, i]
    return total
