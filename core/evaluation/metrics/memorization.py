"""Memorization of verbatim records (prefix + suffix), on token ids.

- MA (memorization accuracy; Tirumala et al.): with the record teacher-forced, the share of
  suffix positions where the most likely next token is the true one. Over a set it is pooled
  over tokens (hits / positions), as core/demo/report.py computes it.
- EL_n (extraction likelihood; Jang et al., 2023): for every cut point t in the suffix, greedy
  decoding from the first t tokens, and the n-gram overlap of that continuation with the true
  rest of the record; EL_n is the mean overlap over cut points. Overlap = matched n-grams
  (clipped counts) / n-grams of the true continuation. n = 10 as in the paper on records whose
  suffix has ≥ 40 tokens, and n = max(1, suffix_tokens // 4) on shorter ones, so that a short
  secret still has several n-grams to match (see :func:`el_n_for`). The paper's and ICU's code
  count the overlap unclipped (:func:`ngram_overlap_unclipped`), which ICU's stop rule uses.
- ES (extraction strength; Carlini et al., 2021): 1 − k/L for the smallest k such that the
  teacher-forced argmax predictions of suffix tokens k..L all match; 1 means the whole suffix
  follows from the prefix, 0 that not even the last token does. open-unlearning computes the same
  except in that last case: its loop over k ends at k = L − 1 without a match and scores 1/L.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

EL_MAX_N = 10


def ma_counts(predicted: Sequence[int], truth: Sequence[int]) -> tuple[int, int]:
    """(hits, positions) of argmax predictions against the true suffix tokens."""
    if len(predicted) != len(truth):
        raise ValueError("predicted and true suffix must have the same length")
    return sum(p == t for p, t in zip(predicted, truth)), len(truth)


def memorization_accuracy(predicted: Sequence[int], truth: Sequence[int]) -> float:
    """MA of one record: share of suffix positions predicted right."""
    hits, total = ma_counts(predicted, truth)
    return hits / total if total else float("nan")


def el_n_for(suffix_tokens: int) -> int:
    """The n of EL_n for a suffix of this many tokens: min(10, max(1, suffix_tokens // 4))."""
    return min(EL_MAX_N, max(1, suffix_tokens // 4))


def _ngrams(tokens: Sequence[int], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def ngram_overlap(generated: Sequence[int], reference: Sequence[int], n: int) -> float:
    """Matched n-grams (clipped counts) / n-grams of ``reference``; 0 when it has none."""
    want = _ngrams(reference, n)
    total = sum(want.values())
    if not total:
        return 0.0
    got = _ngrams(generated, n)
    return sum(min(count, want[gram]) for gram, count in got.items()) / total


def extraction_likelihood(continuations: Sequence[Sequence[int]], references: Sequence[Sequence[int]], n: int) -> float:
    """EL_n of one record: mean overlap over its cut points (one continuation per cut point)."""
    if not references:
        return float("nan")
    overlaps = [ngram_overlap(g, r, n) for g, r in zip(continuations, references, strict=True)]
    return sum(overlaps) / len(overlaps)


def ngram_overlap_unclipped(generated: Sequence[int], reference: Sequence[int], n: int) -> float | None:
    """The overlap as the EL of Jang et al. and ICU's code count it: every n-gram of ``generated``
    that occurs among ``reference``'s n-grams counts, repeats included (so a continuation looping
    over one true n-gram scores high), over the number of ``reference``'s n-grams; None when
    ``reference`` has no n-gram (their code skips such a cut point)."""
    want = _ngrams(reference, n)
    total = sum(want.values())
    if not total:
        return None
    got = _ngrams(generated, n)
    return sum(count for gram, count in got.items() if gram in want) / total


def extraction_strength(predicted: Sequence[int], truth: Sequence[int]) -> float:
    """ES = 1 − k/L, k the start of the longest run of correct predictions ending the suffix."""
    length = len(truth)
    if not length:
        return float("nan")
    k = length
    while k > 0 and predicted[k - 1] == truth[k - 1]:
        k -= 1
    return 1 - k / length
