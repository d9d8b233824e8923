"""Uncertainty from the items: bootstrap intervals and exact tests.

- ``interval(a, b, paired=...)``: the 95% percentile bootstrap interval of a − b, where a and b
  are metrics (two phases of one model, or a model and its target level) or b is a fixed level.
  Each metric is recomputed with its own aggregate on resampled items, so an AUC or a perplexity
  is resampled as faithfully as a mean. Paired: the same resampled items for both sides (before
  and after; the model and the reference model on the same questions); unpaired: each side on its
  own (a forget set against its holdout set).
- ``exact_p(a, b, paired=...)``: for proportions (accuracies, rates) an exact test instead:
  McNemar's on the discordant pairs (paired), Fisher's (two samples), the binomial test (against
  a fixed level). Other metrics: None, and the interval decides.
Resampling is seeded, so the same results give the same intervals.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import binomtest, fisher_exact

from unlearn_studio.core.evaluation.aggregates import aggregate
from unlearn_studio.core.evaluation.result import MetricValue

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95
ALPHA = 0.05
SEED = 0


def _lengths(metric: MetricValue) -> dict[str, int]:
    return {unit: len(metric.groups[group]) for group, unit in metric.units.items()}


def _draw(rng: np.random.Generator, lengths: dict[str, int]) -> dict[str, np.ndarray]:
    return {unit: rng.integers(0, n, (BOOTSTRAP_SAMPLES, n)) if n else np.zeros((BOOTSTRAP_SAMPLES, 0), dtype=int)
            for unit, n in lengths.items()}


def _replicates(metric: MetricValue, draws: dict[str, np.ndarray]) -> np.ndarray:
    """The metric recomputed on every resample (vectorized for the plain averages)."""
    groups = {g: np.asarray(values, dtype=float) for g, values in metric.groups.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any finite value is NaN
        if metric.aggregate in ("mean", "proportion", "exp_mean"):
            means = np.nanmean(groups["values"][draws[metric.units["values"]]], axis=1)
            return np.exp(means) if metric.aggregate == "exp_mean" else means
        if metric.aggregate == "pooled_ratio":
            hits = groups["hits"][draws[metric.units["hits"]]].sum(axis=1)
            positions = groups["positions"][draws[metric.units["positions"]]].sum(axis=1)
            return np.where(positions > 0, hits / np.where(positions > 0, positions, 1), np.nan)
    out = np.empty(BOOTSTRAP_SAMPLES)
    for b in range(BOOTSTRAP_SAMPLES):
        resampled = {g: values[draws[metric.units[g]][b]] for g, values in groups.items()}
        out[b] = aggregate(metric.aggregate, resampled, metric.params)
    return out


def interval(a: MetricValue, b: MetricValue | float | None = None, *, paired: bool = True) -> tuple[float, float]:
    """The bootstrap interval of a − b (b: another metric, a fixed level, or None for a alone)."""
    rng = np.random.default_rng(SEED)
    draws_a = _draw(rng, _lengths(a))
    replicates = _replicates(a, draws_a)
    if isinstance(b, MetricValue):
        lengths_b = _lengths(b)
        if paired and all(draws_a.get(u) is not None and _lengths(a).get(u) == n for u, n in lengths_b.items()):
            draws_b = {u: draws_a[u] for u in lengths_b}
        else:
            draws_b = _draw(rng, lengths_b)
        replicates = replicates - _replicates(b, draws_b)
    elif b is not None:
        replicates = replicates - b
    finite = replicates[np.isfinite(replicates)]
    if not finite.size:
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _binary(metric: MetricValue) -> np.ndarray | None:
    if metric.aggregate != "proportion":
        return None
    return np.asarray(metric.groups["values"], dtype=float)


def exact_p(a: MetricValue, b: MetricValue | float, *, paired: bool = True) -> float | None:
    """Two-sided p-value of an exact test that a's proportion equals b's (or the level b);
    None when a is not a proportion."""
    values_a = _binary(a)
    if values_a is None:
        return None
    if not isinstance(b, MetricValue):
        kept = values_a[~np.isnan(values_a)]
        if not kept.size:
            return None
        return float(binomtest(int(kept.sum()), int(kept.size), min(1.0, max(0.0, float(b)))).pvalue)
    values_b = _binary(b)
    if values_b is None:
        return None
    if paired and values_a.size == values_b.size:
        both = ~np.isnan(values_a) & ~np.isnan(values_b)
        gained = int(((values_a == 1) & (values_b == 0) & both).sum())
        lost = int(((values_a == 0) & (values_b == 1) & both).sum())
        if gained + lost == 0:
            return 1.0
        return float(binomtest(gained, gained + lost, 0.5).pvalue)
    kept_a, kept_b = values_a[~np.isnan(values_a)], values_b[~np.isnan(values_b)]
    if not kept_a.size or not kept_b.size:
        return None
    table = [[int(kept_a.sum()), int(kept_a.size - kept_a.sum())], [int(kept_b.sum()), int(kept_b.size - kept_b.sum())]]
    return float(fisher_exact(table).pvalue)


def significant(p_value: float | None, ci: tuple[float, float]) -> bool:
    """Whether a difference is significant at 5%: by the exact test where there is one, else by
    the interval excluding 0."""
    if p_value is not None:
        return p_value < ALPHA
    low, high = ci
    if math.isnan(low) or math.isnan(high):
        return False
    return not (low <= 0 <= high)
