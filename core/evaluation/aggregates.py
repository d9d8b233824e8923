"""How a metric's per-item values make its number, by name.

A metric keeps its per-item values in named groups (e.g. "values", or "members" and "nonmembers"
for a membership AUC); NaN marks an item without a value (a row the judge could not judge, a
record beyond the EL sample). The evaluation computes each number with its aggregate, and the
judgement recomputes it on resampled items for a confidence interval, so both agree by
construction. "proportion" is the mean of 0/1 values: the judgement uses exact tests for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from unlearn_studio.core.evaluation.metrics import forget_quality, membership, utility

Groups = Mapping[str, Sequence[float]]


def finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[~np.isnan(array)]


def _mean_of(values: Sequence[float]) -> float:
    kept = finite(values)
    return float(kept.mean()) if kept.size else math.nan


def mean(groups: Groups, params: Mapping[str, float]) -> float:
    return _mean_of(groups["values"])


def pooled_ratio(groups: Groups, params: Mapping[str, float]) -> float:
    """Σ hits / Σ positions (MA pooled over the suffix tokens of all records)."""
    positions = float(np.sum(groups["positions"]))
    return float(np.sum(groups["hits"])) / positions if positions else math.nan


def exp_mean(groups: Groups, params: Mapping[str, float]) -> float:
    """exp of the mean per-text NLL: perplexity."""
    value = _mean_of(groups["values"])
    return math.exp(value) if not math.isnan(value) else math.nan


def auc(groups: Groups, params: Mapping[str, float]) -> float:
    return membership.auc(groups["members"], groups["nonmembers"])


def privleak(groups: Groups, params: Mapping[str, float]) -> float:
    return membership.privleak(auc(groups, params), params["reference_auc"])


def ks_log10p(groups: Groups, params: Mapping[str, float]) -> float:
    """log10 of the KS-test p-value between the model's and the reference's truth ratios."""
    return forget_quality.log10_p(forget_quality.forget_quality(groups["model"], groups["reference"]))


def harmonic_of_means(groups: Groups, params: Mapping[str, float]) -> float:
    """Harmonic mean of the groups' means (model utility)."""
    return utility.harmonic_mean(_mean_of(values) for values in groups.values())


def pooled_mean(groups: Groups, params: Mapping[str, float]) -> float:
    """The mean over the items of every group together (rep-4 over all answers)."""
    return _mean_of([v for values in groups.values() for v in values])


AGGREGATES: dict[str, Callable[[Groups, Mapping[str, float]], float]] = {
    "mean": mean,
    "proportion": mean,
    "pooled_ratio": pooled_ratio,
    "exp_mean": exp_mean,
    "auc": auc,
    "privleak": privleak,
    "ks_log10p": ks_log10p,
    "harmonic_of_means": harmonic_of_means,
    "pooled_mean": pooled_mean,
}


def aggregate(name: str, groups: Groups, params: Mapping[str, float] | None = None) -> float:
    value = AGGREGATES[name](groups, params or {})
    return float(value) if value is not None else math.nan
