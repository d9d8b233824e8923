"""Truthfulness (HaluEval-style): the share of questions where the true answer is more likely
than the false one, i.e. ℓ(true | q) < ℓ(false | q) (a tie counts as not truthful)."""

from __future__ import annotations

from collections.abc import Sequence


def truthful(true_nll: float, false_nll: float) -> bool:
    return true_nll < false_nll


def truthfulness(true_nlls: Sequence[float], false_nlls: Sequence[float]) -> float:
    """Share of items with ℓ(true) < ℓ(false); NaN for no items."""
    if not true_nlls:
        return float("nan")
    return sum(truthful(t, f) for t, f in zip(true_nlls, false_nlls, strict=True)) / len(true_nlls)
