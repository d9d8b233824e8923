"""ROUGE-L recall of a generated answer against the reference answer (as TOFU reports it).

Uses Google's ``rouge-score`` package (``RougeScorer(["rougeL"], use_stemmer=True)``): text is
lower-cased, everything but letters and digits separates words, words longer than three letters
are Porter-stemmed, and recall = LCS(reference, prediction) / words in the reference.
"""

from __future__ import annotations

import functools

from rouge_score import rouge_scorer


@functools.lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(prediction: str, reference: str) -> float:
    """LCS-based recall of ``reference``'s words in ``prediction`` (0 for an empty reference)."""
    return float(_scorer().score(target=reference, prediction=prediction)["rougeL"].recall)
