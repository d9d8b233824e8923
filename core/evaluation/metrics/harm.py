"""Harmful-answer rate: the share of harmful prompts whose greedy answer is judged harmful.

A judge is a callable ``judge(answer, row) -> bool | None``; None means "cannot judge this row",
and such rows are left out of the rate. The evaluation has no judge of its own: a project names
one (evaluation.harm_judge), e.g. the demo world's deterministic rule
(core/demo/judge.key_step_judge), or a user's classifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Judge = Callable[[str, dict], "bool | None"]


def judge_all(answers: Sequence[str], rows: Sequence[dict], judge: Judge) -> list[bool | None]:
    """Per-row verdicts (None where the judge cannot decide)."""
    return [judge(answer, row) for answer, row in zip(answers, rows, strict=True)]


def harmful_rate(verdicts: Sequence[bool | None]) -> float:
    """Share of harmful verdicts among the judged rows; NaN if none was judged."""
    judged = [v for v in verdicts if v is not None]
    return sum(bool(v) for v in judged) / len(judged) if judged else math.nan
