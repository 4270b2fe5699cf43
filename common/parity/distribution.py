"""Streaming distribution figures of score columns: exact counts plus a bounded sample.

Counts, NaN/inf/null counts, min, max and mean are exact over every row. KS, PSI, quantiles
and histograms come from a bottom-k sample: the ``capacity`` finite values whose key hashes
are smallest. Choosing by key hash (not at random) is deterministic across runs and
*coordinated* across sides: when two outputs hold the same keys, both samples hold the same
rows, so identical outputs give KS = PSI = 0 exactly and sampling adds no noise of its own.
A side with at most ``capacity`` finite values is described exactly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SAMPLE_CAPACITY = 100_000
QUANTILES = {
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
PSI_BINS = 10
PSI_EPSILON = 1e-4
HISTOGRAM_BINS = 40
SAMPLING_NOTE = (
    f"Counts, min, max and mean are exact. KS, PSI (deciles of the left side), quantiles and "
    f"histograms use the up to {SAMPLE_CAPACITY:,} finite values per side with the smallest key "
    "hashes: the same rows on every side, exact for smaller outputs."
)


class ScoreObserver:
    """Collects one side's figures for one score column, batch by batch, in bounded memory."""

    def __init__(self, capacity: int = SAMPLE_CAPACITY) -> None:
        self.capacity = capacity
        self.rows = self.nulls = self.nans = self.pos_inf = self.neg_inf = self.finite = 0
        self.total = 0.0
        self.minimum = np.inf
        self.maximum = -np.inf
        self._hashes = np.empty(0, dtype=np.uint64)
        self._values = np.empty(0, dtype=np.float64)

    def add(self, values: pa.Array, hashes: np.ndarray) -> None:
        """Add a batch of float values and the key hashes of their rows."""
        self.rows += len(values)
        self.nulls += values.null_count
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        x = values.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        self.nans += int(np.count_nonzero(valid & np.isnan(x)))
        self.pos_inf += int(np.count_nonzero(valid & (x == np.inf)))
        self.neg_inf += int(np.count_nonzero(valid & (x == -np.inf)))
        keep = valid & np.isfinite(x)
        x, h = x[keep], hashes[keep]
        if not len(x):
            return
        self.finite += len(x)
        self.total += float(x.sum())
        self.minimum = min(self.minimum, float(x.min()))
        self.maximum = max(self.maximum, float(x.max()))
        self._hashes = np.concatenate([self._hashes, h])
        self._values = np.concatenate([self._values, x])
        if len(self._values) > 2 * self.capacity:
            self._prune()

    def _prune(self) -> None:
        if len(self._values) > self.capacity:
            # Ties between equal hashes (duplicated keys) are broken by position: still bounded.
            keep = np.argpartition(self._hashes, self.capacity - 1)[: self.capacity]
            self._hashes, self._values = self._hashes[keep], self._values[keep]

    def sample(self) -> np.ndarray:
        """The sampled finite values, sorted."""
        self._prune()
        return np.sort(self._values)

    def summary(self) -> dict:
        """Exact counts and extremes plus sample quantiles, JSON-able."""
        sample = self.sample()
        return {
            "rows": self.rows,
            "nulls": self.nulls,
            "nan": self.nans,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
            "finite": self.finite,
            "min": self.minimum if self.finite else None,
            "max": self.maximum if self.finite else None,
            "mean": self.total / self.finite if self.finite else None,
            "sampled": len(sample),
            "exact_sample": len(sample) == self.finite,
            "quantiles": quantiles(sample),
        }


def quantiles(sorted_values: np.ndarray) -> dict[str, float | None]:
    """p1..p99 (linear interpolation) of a sample; None when it is empty."""
    if not len(sorted_values):
        return {name: None for name in QUANTILES}
    values = np.quantile(sorted_values, list(QUANTILES.values()))
    return {name: float(v) for name, v in zip(QUANTILES, values, strict=True)}


def ks_statistic(x: np.ndarray, y: np.ndarray) -> float | None:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    if not len(x) or not len(y):
        return None
    x, y = np.sort(x), np.sort(y)
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def psi(base: np.ndarray, other: np.ndarray) -> float | None:
    """Population stability index of ``other`` against ``base``.

    Bins are the deciles of ``base`` (ties merged); shares are floored at PSI_EPSILON so an
    empty bin gives a large but finite value.
    """
    if not len(base) or not len(other):
        return None
    edges = np.unique(np.quantile(base, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    share_base = np.bincount(np.searchsorted(edges, base, side="right"), minlength=len(edges) + 1)
    share_other = np.bincount(np.searchsorted(edges, other, side="right"), minlength=len(edges) + 1)
    p = np.clip(share_base / len(base), PSI_EPSILON, None)
    q = np.clip(share_other / len(other), PSI_EPSILON, None)
    return float(np.sum((q - p) * np.log(q / p)))


def histogram(samples: dict[str, np.ndarray]) -> tuple[list[float], dict[str, list[int]]]:
    """Counts of each side's sample over one shared set of bin edges, for overlaid plots."""
    finite = [s for s in samples.values() if len(s)]
    if not finite:
        return [], {side: [] for side in samples}
    low = min(float(s[0]) for s in finite)
    high = max(float(s[-1]) for s in finite)
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts = {side: np.histogram(s, bins=edges)[0].tolist() for side, s in samples.items()}
    return edges.tolist(), counts
