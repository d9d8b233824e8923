"""Membership inference: is an item in the training data? (forget = members, holdout = not)

Scores are "higher = more member-like":
- LOSS:   −ℓ, the negated mean NLL of the item's scored tokens.
- Min-K%: the mean log-probability of the k·n least likely tokens (k = 0.4, at least one token;
  Shi et al., 2024), which ignores the easy tokens every model predicts.
AUC is the probability that a random member scores higher than a random non-member (ties count
one half; the Mann-Whitney form of the ROC AUC): 1 = perfectly separable, 0.5 = indistinguishable.

PrivLeak (MUSE) compares the unlearned model's AUC with the retain model's (which never saw the
forget set): ((1 − AUC_unlearned) − (1 − AUC_retain)) / (1 − AUC_retain) × 100. 0 is ideal;
negative means the forget set still looks like training data (under-unlearning), positive means
it looks less like training data than it should (over-unlearning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MIN_K = 0.4


def loss_score(token_nlls: Sequence[float]) -> float:
    """LOSS score: −mean NLL (higher = more member-like)."""
    if not token_nlls:
        return math.nan
    return -float(np.mean(token_nlls))


def min_k_score(token_nlls: Sequence[float], k: float = MIN_K) -> float:
    """Min-K% score: mean log-probability of the ⌊k·n⌋ (≥ 1) lowest-probability tokens."""
    if not token_nlls:
        return math.nan
    count = max(1, int(len(token_nlls) * k))
    highest_nll = np.sort(np.asarray(token_nlls, dtype=float))[::-1][:count]
    return -float(highest_nll.mean())


def auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """P(member score > non-member score) + ½ P(equal); NaN if either side is empty."""
    members = np.asarray([s for s in member_scores if not math.isnan(s)], dtype=float)
    others = np.asarray([s for s in nonmember_scores if not math.isnan(s)], dtype=float)
    if not len(members) or not len(others):
        return math.nan
    greater = (members[:, None] > others[None, :]).sum()
    equal = (members[:, None] == others[None, :]).sum()
    return float((greater + 0.5 * equal) / (len(members) * len(others)))


def privleak(auc_unlearned: float, auc_retain: float) -> float:
    """PrivLeak in percent; NaN when the retain model's AUC is 1 (nothing to compare against)."""
    base = 1 - auc_retain
    if base == 0 or math.isnan(base):
        return math.nan
    return ((1 - auc_unlearned) - base) / base * 100
