"""Forget quality (TOFU): how indistinguishable the unlearned model is from the retain model.

The p-value of a two-sample Kolmogorov-Smirnov test between the per-item truth ratios on the
forget set of the evaluated model and of the retain model (which was never trained on it).
High p (up to 1): the distributions match; tiny p: the model still behaves as if it knew the
forget set. It is shown as log10(p), since the interesting values span many orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import ks_2samp


def forget_quality(unlearned_tr: Sequence[float], retain_tr: Sequence[float]) -> float:
    """KS-test p-value between the two truth-ratio samples; NaN if either is empty."""
    a = [v for v in unlearned_tr if not math.isnan(v)]
    b = [v for v in retain_tr if not math.isnan(v)]
    if not a or not b:
        return math.nan
    return float(ks_2samp(a, b).pvalue)


def log10_p(p: float) -> float:
    """log10 of a p-value (−inf for 0, NaN stays NaN)."""
    if math.isnan(p):
        return math.nan
    return math.log10(p) if p > 0 else -math.inf
