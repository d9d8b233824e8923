"""Fluency: repetition in generations, perplexity on general text, and a collapse warning.

rep-n = 1 − unique n-grams / n-grams of one generation (Welleck et al., 2020), on whitespace
words, n = 1..4; a generation with fewer than n words has no rep-n (None) and is left out of
the mean. Perplexity is exp of the mean over texts of each text's mean token NLL (as
core/demo/report.py computes it).

Collapse warning: unlearning that breaks a model shows up as degenerate repetition or a
perplexity blow-up. After is flagged against before when rep-4 rises by more than
``REP4_JUMP`` (0.2, absolute) or general-text perplexity grows by more than ``PPL_RATIO`` (×2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

REP_NS = (1, 2, 3, 4)
REP4_JUMP = 0.2
PPL_RATIO = 2.0


def rep_n(tokens: Sequence, n: int) -> float | None:
    """1 − unique n-grams / n-grams; None when the sequence has no n-gram."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return None
    return 1 - len(set(grams)) / len(grams)


def repetition(text: str, ns: Iterable[int] = REP_NS) -> dict[int, float | None]:
    """rep-n of one generation for each n, on whitespace-separated words."""
    words = text.split()
    return {n: rep_n(words, n) for n in ns}


def mean_rep(texts: Iterable[str], n: int) -> float:
    """Mean rep-n over the generations that have n-grams; NaN if none has."""
    values = [v for v in (rep_n(t.split(), n) for t in texts) if v is not None]
    return sum(values) / len(values) if values else math.nan


def perplexity(mean_nlls: Sequence[float]) -> float:
    """exp(mean of the per-text mean NLLs); NaN for no texts."""
    if not mean_nlls:
        return math.nan
    return math.exp(sum(mean_nlls) / len(mean_nlls))


def collapse_warnings(
    before: Mapping[str, float],
    after: Mapping[str, float],
    *,
    rep_key: str = "fluency/rep_4",
    ppl_key: str = "general/perplexity",
    rep4_jump: float = REP4_JUMP,
    ppl_ratio: float = PPL_RATIO,
) -> list[str]:
    """Messages for every collapse sign between two aggregate dicts (empty: no sign)."""
    warnings = []
    rep_before, rep_after = before.get(rep_key, math.nan), after.get(rep_key, math.nan)
    if rep_after - rep_before > rep4_jump:  # False when either is NaN
        warnings.append(
            f"generations became repetitive: rep-4 rose from {rep_before:.3f} to {rep_after:.3f} "
            f"(more than +{rep4_jump})"
        )
    ppl_before, ppl_after = before.get(ppl_key, math.nan), after.get(ppl_key, math.nan)
    if ppl_after > ppl_ratio * ppl_before:
        warnings.append(
            f"perplexity on general text jumped from {ppl_before:.2f} to {ppl_after:.2f} "
            f"(more than ×{ppl_ratio:g})"
        )
    return warnings
