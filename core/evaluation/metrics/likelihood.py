"""Answer likelihood: ℓ(a|q) = mean NLL of the answer tokens, P̄ = exp(−ℓ), and the truth ratio.

Truth ratio (TOFU): TR = P̄(wrong answers, geometric mean) / P̄(right answer)
                      = exp(ℓ(right) − mean_i ℓ(wrong_i)).
The right answer is the phrasing the wrong answers were made from (see :func:`tr_right_answer`):
the paraphrased answer for TOFU-style data, the answer itself for the demo world, whose wrong
answers are the answer's template with another value. A model that knows the fact has TR ≪ 1;
one that never saw it has TR ≈ 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence


def prob(nll: float) -> float:
    """P̄ = exp(−ℓ) for one answer."""
    return math.exp(-nll)


def mean_prob(nlls: Iterable[float]) -> float:
    """Mean P̄ over items (the "Prob" metric); NaN for no items."""
    values = [prob(nll) for nll in nlls]
    return sum(values) / len(values) if values else math.nan


def truth_ratio(right_nll: float, wrong_nlls: Sequence[float]) -> float:
    """TR = exp(ℓ(right) − mean ℓ(wrong)); NaN when there are no wrong answers."""
    if not wrong_nlls:
        return math.nan
    return math.exp(right_nll - sum(wrong_nlls) / len(wrong_nlls))


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def forget_tr_score(ratios: Iterable[float]) -> float:
    """Forget-set score: mean min(TR, 1/TR); 1 means the model cannot tell right from wrong."""
    values = [min(tr, 1 / tr) if tr > 0 else 0.0 for tr in _finite(ratios)]
    return sum(values) / len(values) if values else math.nan


def retain_tr_score(ratios: Iterable[float]) -> float:
    """Retain-set score: mean max(0, 1 − TR); near 1 means the right answer is much likelier."""
    values = [max(0.0, 1 - tr) for tr in _finite(ratios)]
    return sum(values) / len(values) if values else math.nan


_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' lower-cased word sets."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def tr_right_answer(answer: str, paraphrased: str | None, wrong_answers: Sequence[str]) -> str:
    """Which right answer the truth ratio compares the wrong answers with.

    Like must be compared with like: the wrong answers differ from one of the right phrasings only
    in the fact. TOFU's wrong answers are perturbations of the paraphrased answer; the demo world's
    are the answer's own template with another value. So the phrasing that shares more words with
    the wrong answers (mean Jaccard similarity of word sets) is used; on a tie, the paraphrased
    answer, as TOFU does. Rows without a paraphrase use the answer.
    """
    if not paraphrased or not wrong_answers:
        return answer
    def closeness(text: str) -> float:
        return sum(_similarity(text, w) for w in wrong_answers) / len(wrong_answers)
    return answer if closeness(answer) > closeness(paraphrased) else paraphrased
