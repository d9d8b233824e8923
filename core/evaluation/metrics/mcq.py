"""Multiple-choice accuracy: the model picks the choice whose answer tokens have the lowest mean
NLL after the question (prompt without trailing space, each choice with a leading space, as in
core/demo/report.py); ties go to the first such choice."""

from __future__ import annotations

from collections.abc import Sequence


def pick(choice_nlls: Sequence[float]) -> int:
    """Index of the choice with the lowest NLL (the first one on ties)."""
    return min(range(len(choice_nlls)), key=choice_nlls.__getitem__)


def mcq_accuracy(choice_nlls: Sequence[Sequence[float]], labels: Sequence[int]) -> float:
    """Share of questions where the lowest-NLL choice is the labelled one."""
    if not labels:
        return float("nan")
    return sum(pick(nlls) == label for nlls, label in zip(choice_nlls, labels, strict=True)) / len(labels)
