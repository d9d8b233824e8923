"""Model utility (TOFU): the harmonic mean of several "higher is better" scores in [0, 1].

A harmonic mean is dragged down by the weakest component, so a model cannot buy back a collapsed
ability with the others. core/evaluation/suite_metrics.py documents which components it uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def harmonic_mean(values: Iterable[float]) -> float:
    """Harmonic mean of the non-NaN values; 0 if any is ≤ 0; NaN if none is left."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return math.nan
    if any(v <= 0 for v in kept):
        return 0.0
    return len(kept) / sum(1 / v for v in kept)
