"""The recovery ratio: how far an attack brings the unlearned model back toward the original.

    ratio = (unlearned − reference) / (original − reference)

on the headline forget metric, each model under the same attack: 0 is the level of a model that
never saw the forget data (robust forgetting), 1 the original's (the knowledge is all back).
Without a reference model the reference side is a fixed level (the evaluation's target level:
the holdout set's, or chance). When the original and the reference differ by less than
``MIN_GAP`` there is nothing to recover and no ratio.

Its 95% interval is a paired percentile bootstrap over the items (the three models answered the
same items; each resample recomputes each model's metric with its own aggregate), seeded.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from unlearn_studio.core.evaluation.aggregates import aggregate
from unlearn_studio.core.evaluation.result import MetricValue
from unlearn_studio.core.results.audit.models import ORIGINAL, REFERENCE, UNLEARNED

MIN_GAP = 0.05
SAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Recovery:
    ratio: float
    low: float = math.nan
    high: float = math.nan
    reason: str = ""  # why there is no ratio

    def to_dict(self) -> dict:
        return {"ratio": _plain(self.ratio), "ci": [_plain(self.low), _plain(self.high)], "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> Recovery:
        low, high = data["ci"]
        return cls(_number(data["ratio"]), _number(low), _number(high), data.get("reason", ""))


def _plain(value: float):
    return value if math.isfinite(value) else None


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _length(metric: MetricValue) -> int:
    return len(next(iter(metric.groups.values())))


def _replicates(metric: MetricValue, draws: np.ndarray) -> np.ndarray:
    groups = {name: np.asarray(values, dtype=float) for name, values in metric.groups.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any finite value is NaN
        if metric.aggregate in ("mean", "proportion"):
            return np.nanmean(groups["values"][draws], axis=1)
        return np.array([aggregate(metric.aggregate, {name: values[row] for name, values in groups.items()},
                                   metric.params) for row in draws])


def recovery(unlearned: MetricValue, original: MetricValue, reference: MetricValue | float) -> Recovery:
    """The recovery ratio of ``unlearned`` between ``reference`` (a metric or a level) and ``original``."""
    level = reference.value if isinstance(reference, MetricValue) else float(reference)
    gap = original.value - level
    if not all(math.isfinite(v) for v in (unlearned.value, original.value, level)):
        return Recovery(math.nan, reason="a model's value could not be measured")
    if abs(gap) < MIN_GAP:
        return Recovery(math.nan, reason=f"the original and the reference differ by {abs(gap):.3f} (< {MIN_GAP}): "
                                         "there is nothing to recover")
    ratio = (unlearned.value - level) / gap
    sides = [unlearned, original] + ([reference] if isinstance(reference, MetricValue) else [])
    n = _length(unlearned)
    if any(_length(side) != n for side in sides) or n == 0:
        return Recovery(ratio, reason="the models were measured on different items: no interval")
    draws = np.random.default_rng(SEED).integers(0, n, (SAMPLES, n))
    u, o = _replicates(unlearned, draws), _replicates(original, draws)
    r = _replicates(reference, draws) if isinstance(reference, MetricValue) else level
    with np.errstate(divide="ignore", invalid="ignore"):
        resampled = (u - r) / (o - r)
    resampled = resampled[np.isfinite(resampled)]
    if not resampled.size:
        return Recovery(ratio)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Recovery(ratio, float(low), float(high))


def between_models(values: dict[str, MetricValue], floor: MetricValue | float | None) -> Recovery:
    """The ratio of the models' values under one attack (model name -> value); without a reference
    model, against ``floor`` (None: there is no level to compare with)."""
    if UNLEARNED not in values or ORIGINAL not in values:
        return Recovery(math.nan, reason="the metric could not be measured on every model")
    if REFERENCE in values:
        return recovery(values[UNLEARNED], values[ORIGINAL], values[REFERENCE])
    if floor is not None:
        return recovery(values[UNLEARNED], values[ORIGINAL], floor)
    return Recovery(math.nan, reason="no reference model and no target level for this metric")
