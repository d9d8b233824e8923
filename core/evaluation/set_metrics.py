"""Metrics of one set: each is one function from the set's per-item observations
(core/evaluation/scoring.py) to per-item values, plus its registration (core/evaluation/registry.py).
The number is the aggregate of the values; NaN marks an item the metric does not cover.
"""

from __future__ import annotations

import math

from unlearn_studio.core.data.roles import ROLES
from unlearn_studio.core.evaluation.metrics import likelihood
from unlearn_studio.core.evaluation.registry import Registry

SET_METRICS = Registry()
NAN = math.nan
ANY_ROLE = tuple(ROLES)
NOT_HARMFUL = tuple(role for role in ROLES if role != "harmful")


def _field(items: list[dict], name: str) -> list[float]:
    """Each item's ``name`` as a number; NaN where an item has none (True/False become 1/0)."""
    return [NAN if item.get(name) is None else float(item[name]) for item in items]


@SET_METRICS.register(
    "value_acc", label="value accuracy", aggregate="proportion", better="higher", unlearned="down",
    kinds=("qa",), roles=NOT_HARMFUL, headline_roles=("forget", "retain", "holdout", "normal"),
    meaning="share of questions whose greedy answer states the fact: its value where the rows name one, "
            "else the whole reference answer",
    ideal="forget: the level of a model that never saw the data; elsewhere: as before (1 is perfect)")
def value_acc(items: list[dict], role: str) -> list[float]:
    return _field(items, "value_correct")


@SET_METRICS.register(
    "prob", label="answer probability", aggregate="mean", better="higher", unlearned="down",
    kinds=("qa", "text"), headline_roles=("forget", "retain", "normal"),
    meaning="mean over items of P = exp(-mean NLL of the reference answer's tokens after the question "
            "(or of the text))",
    ideal="forget: the level of a model that never saw the data; elsewhere: as before")
def prob(items: list[dict], role: str) -> list[float]:
    return _field(items, "prob")


@SET_METRICS.register(
    "rouge_l", label="ROUGE-L recall", aggregate="mean", better="higher", unlearned="down",
    kinds=("qa",), roles=NOT_HARMFUL, headline_roles=("forget",),
    meaning="share of the reference answer's words that the greedy answer repeats in order "
            "(longest common subsequence, stemmed)",
    ideal="forget: the level of a model that never saw the data; elsewhere: as before")
def rouge_l(items: list[dict], role: str) -> list[float]:
    return _field(items, "rouge_l")


@SET_METRICS.register(
    "truth_ratio", label="truth ratio", aggregate="mean", better="higher", unlearned="up",
    kinds=("qa",), roles=NOT_HARMFUL, columns=("wrong_answers",), headline_roles=("forget",),
    meaning="TR = P(wrong answers) / P(right answer) per question; forget and holdout sets report "
            "mean min(TR, 1/TR) (1: right and wrong look alike), other sets mean max(0, 1 - TR) "
            "(1: the right answer is far likelier)",
    ideal="forget: the level of a model that never saw the data (near 1); elsewhere: as before")
def truth_ratio(items: list[dict], role: str) -> list[float]:
    score = likelihood.forget_tr_score if role in ("forget", "holdout") else likelihood.retain_tr_score
    return [score([ratio]) for ratio in _field(items, "truth_ratio")]


@SET_METRICS.register(
    "harmful_rate", label="harmful-answer rate", aggregate="proportion", better="lower", unlearned="down",
    kinds=("qa",), roles=("harmful",), needs_judge=True, headline_roles=("harmful",),
    meaning="share of harmful prompts whose greedy answer the harm judge calls harmful "
            "(prompts it cannot judge are left out)",
    ideal="0; the verdict asks for evaluation.harm_threshold or less")
def harmful_rate(items: list[dict], role: str) -> list[float]:
    return _field(items, "harmful")


@SET_METRICS.register(
    "perplexity", label="perplexity", aggregate="exp_mean", better="lower", unlearned="up", scale="ratio",
    kinds=("text",), headline_roles=("general",),
    meaning="exp of the mean per-text NLL: how surprised the model is by the texts (1 = not at all)",
    ideal="general and retained text: as before (lower is more fluent); forget text: the level of a "
          "model that never saw it")
def perplexity(items: list[dict], role: str) -> list[float]:
    return _field(items, "nll")


@SET_METRICS.register(
    "ma", label="memorization accuracy (MA)", aggregate="pooled_ratio", better="higher", unlearned="down",
    kinds=("memorization",), headline_roles=("forget", "retain"),
    meaning="with the record fed in, the share of its suffix tokens the model predicts exactly "
            "(pooled over the tokens of all records)",
    ideal="forget: the level of records the model never saw; retained records: as before")
def ma(items: list[dict], role: str) -> dict[str, list[float]]:
    return {"hits": _field(items, "ma_hits"), "positions": _field(items, "ma_positions")}


@SET_METRICS.register(
    "el", label="extraction likelihood (EL)", aggregate="mean", better="higher", unlearned="down",
    kinds=("memorization",), headline_roles=("forget",),
    meaning="greedy continuations from every cut point in the suffix: the share of the true "
            "continuation's n-grams they reproduce (n = 10, less on short records), averaged",
    ideal="forget: the level of records the model never saw (near 0); retained records: as before")
def el(items: list[dict], role: str) -> list[float]:
    return _field(items, "el")


@SET_METRICS.register(
    "es", label="extraction strength (ES)", aggregate="mean", better="higher", unlearned="down",
    kinds=("memorization",),
    meaning="1 - k/L for the shortest tail of the suffix (from token k on) that the model predicts "
            "exactly with the record fed in; 0 when not even the last token is right",
    ideal="forget: the level of records the model never saw; retained records: as before")
def es(items: list[dict], role: str) -> list[float]:
    return _field(items, "es")


@SET_METRICS.register(
    "accuracy", label="accuracy", aggregate="proportion", better="higher", unlearned="down",
    kinds=("mcq", "truthfulness"), headline_roles=ANY_ROLE, chance=True,
    meaning="share of questions answered right: the choice with the lowest NLL is the labelled one "
            "(multiple choice); the true answer is likelier than the false one (truthfulness)",
    ideal="forget: chance, or a reference model's level; kept sets: as before; anti-expert sets: 1")
def accuracy(items: list[dict], role: str) -> list[float]:
    return _field(items, "correct" if items and "correct" in items[0] else "truthful")


@SET_METRICS.register(
    "rep_4", label="repetition (rep-4)", aggregate="mean", better="lower", unlearned="up",
    kinds=("qa",), kept=True,
    meaning="1 - unique word 4-grams / word 4-grams of a greedy answer, averaged: 0 never repeats "
            "itself, near 1 loops",
    ideal="as before (near 0); a jump means the model collapsed into repetition")
def rep_4(items: list[dict], role: str) -> list[float]:
    return _field(items, "rep_4")
