"""Metrics that combine sets: membership inference (a forget set against its holdout set),
PrivLeak and forget quality (against the reference model), model utility and fluency.

Each is one function plus its registration; the function returns, for every scope it applies to,
the per-item groups its aggregate needs (``Computed``) or why it cannot be measured (``Skipped``).
The holdout partner of a forget set is the first holdout set of the same kind and view (the
paraphrase view of a forget set pairs with the paraphrase view of the holdout set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from unlearn_studio.core.evaluation.metrics import likelihood
from unlearn_studio.core.evaluation.registry import Registry
from unlearn_studio.core.evaluation.result import EvalResult, MetricValue

SUITE_METRICS = Registry()
NO_REFERENCE = "needs evaluation.reference_model (a model trained without the forget data)"


@dataclass
class Measured:
    """A measured set as the suite metrics see it."""

    name: str
    role: str
    kind: str
    view: str
    items: list[dict]


@dataclass
class Computed:
    key: str
    scope: str
    groups: dict[str, list[float]]
    units: dict[str, str]
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class Skipped:
    key: str
    reason: str


def _values(items: list[dict], name: str) -> list[float]:
    return [float("nan") if item.get(name) is None else float(item[name]) for item in items]


def _any_value(values: list[float]) -> bool:
    return any(not math.isnan(v) for v in values)


def _forget_sets(sets: dict[str, Measured], kinds: tuple[str, ...]) -> list[Measured]:
    return [s for s in sets.values() if s.role == "forget" and s.kind in kinds]


def holdout_partner(sets: dict[str, Measured], forget: Measured) -> Measured | None:
    return next((s for s in sets.values() if s.role == "holdout" and s.kind == forget.kind and s.view == forget.view),
                None)


def _membership(sets: dict[str, Measured], score: str, name: str) -> list[Computed | Skipped]:
    out = []
    for forget in _forget_sets(sets, ("qa", "text", "memorization")):
        holdout = holdout_partner(sets, forget)
        if holdout is None:
            out.append(Skipped(f"{forget.name}/{name}", f"needs a holdout set of {forget.kind} rows "
                                                       "(items the model never saw: the non-members)"))
            continue
        out.append(Computed(f"{forget.name}/{name}", forget.name,
                            {"members": _values(forget.items, score), "nonmembers": _values(holdout.items, score)},
                            {"members": forget.name, "nonmembers": holdout.name}))
    return out


@SUITE_METRICS.register(
    "mia_auc_min_k", label="membership AUC (Min-K%)", aggregate="auc", better="lower", unlearned="down",
    meaning="how well the Min-K% score (mean log-probability of an item's 40% least likely tokens) tells "
            "forget items from holdout items the model never saw: 1 = perfectly, 0.5 = not at all",
    ideal="the reference model's AUC (PrivLeak 0); without a reference model 0.5. Lower than that "
          "is over-unlearning, which PrivLeak shows as a positive number")
def mia_auc_min_k(sets: dict[str, Measured], reference: EvalResult | None) -> list[Computed | Skipped]:
    return _membership(sets, "min_k", "mia_auc_min_k")


@SUITE_METRICS.register(
    "mia_auc_loss", label="membership AUC (LOSS)", aggregate="auc", better="lower", unlearned="down",
    meaning="as the Min-K% AUC, with the item's mean log-probability (LOSS attack) as the score",
    ideal="the reference model's AUC; without a reference model 0.5")
def mia_auc_loss(sets: dict[str, Measured], reference: EvalResult | None) -> list[Computed | Skipped]:
    return _membership(sets, "loss", "mia_auc_loss")


@SUITE_METRICS.register(
    "privleak", label="PrivLeak", aggregate="privleak", better="higher", unlearned="up", scale="ratio",
    meaning="MUSE's PrivLeak: the Min-K% AUC against the reference model's, ((1 - AUC) - (1 - AUC_ref)) / "
            "(1 - AUC_ref) x 100; negative: the forget set still looks like training data, positive: "
            "less than for a model that never saw it (over-unlearning)",
    ideal="0 (within the tolerance, in percent points x 100)")
def privleak(sets: dict[str, Measured], reference: EvalResult | None) -> list[Computed | Skipped]:
    out = []
    for auc in mia_auc_min_k(sets, reference):
        key = auc.key.replace("/mia_auc_min_k", "/privleak")
        reference_auc = reference.metrics.get(auc.key) if reference is not None else None
        if isinstance(auc, Skipped):
            out.append(Skipped(key, auc.reason))
        elif reference_auc is None:
            out.append(Skipped(key, NO_REFERENCE))
        else:
            out.append(Computed(key, auc.scope, auc.groups, auc.units, {"reference_auc": reference_auc.value}))
    return out


@SUITE_METRICS.register(
    "forget_quality", label="forget quality (log10 p)", aggregate="ks_log10p", better="higher", unlearned="up",
    scale="ratio",
    meaning="log10 of the p-value of a KS test between the forget set's truth ratios and the reference "
            "model's on the same questions: near 0, they cannot be told apart",
    ideal="above log10 0.05 = -1.3 (0 is best); far below it the model still behaves as if it knew the set")
def forget_quality(sets: dict[str, Measured], reference: EvalResult | None) -> list[Computed | Skipped]:
    out = []
    for forget in _forget_sets(sets, ("qa",)):
        key = f"{forget.name}/forget_quality"
        ratios = _values(forget.items, "truth_ratio")
        reference_items = reference.items.get(forget.name) if reference is not None else None
        if not _any_value(ratios):
            out.append(Skipped(key, f"needs the column 'wrong_answers' in the rows of '{forget.name}'"))
        elif reference_items is None:
            out.append(Skipped(key, NO_REFERENCE))
        else:
            out.append(Computed(key, forget.name, {"model": ratios, "reference": _values(reference_items, "truth_ratio")},
                                {"model": forget.name, "reference": forget.name}))
    return out


@SUITE_METRICS.register(
    "model_utility", label="model utility", aggregate="harmonic_of_means", better="higher", unlearned="down",
    kept=True,
    meaning="harmonic mean of the retain sets' answer probability, ROUGE-L and truth ratio and the general "
            "text's probability: dragged down by the weakest of them",
    ideal="as before (1 is perfect)")
def model_utility(sets: dict[str, Measured], reference: EvalResult | None) -> list[Computed | Skipped]:
    groups, units = {}, {}
    for s in sets.values():
        if s.view != "trained":
            continue
        if s.role == "retain" and s.kind == "qa":
            parts = {"prob": _values(s.items, "prob"), "rouge_l": _values(s.items, "rouge_l"),
                     "truth_ratio": [likelihood.retain_tr_score([r]) for r in _values(s.items, "truth_ratio")]}
        elif s.role == "general" and s.kind == "text":
            parts = {"prob": _values(s.items, "prob")}
        else:
            continue
        for part, values in parts.items():
            if _any_value(values):
                groups[f"{s.name}/{part}"], units[f"{s.name}/{part}"] = values, s.name
    if not groups:
        return [Skipped("model_utility", "needs a retain set of questions and answers or a general text set")]
    return [Computed("model_utility", "", groups, units)]


@SUITE_METRICS.register(
    "fluency_rep_4", label="repetition of all answers (rep-4)", aggregate="pooled_mean", better="lower",
    unlearned="up", kept=True,
    meaning="rep-4 over every greedy answer of the evaluation: 0 never repeats itself, near 1 loops",
    ideal="as before (near 0); a jump means the model collapsed into repetition")
def fluency_rep_4(sets: dict[str, Measured], reference: EvalResult | None) -> list[Computed | Skipped]:
    groups = {s.name: _values(s.items, "rep_4") for s in sets.values() if s.kind == "qa"}
    groups = {name: values for name, values in groups.items() if _any_value(values)}
    if not groups:
        return [Skipped("fluency/rep_4", "needs a set of questions, whose greedy answers it measures")]
    return [Computed("fluency/rep_4", "", groups, {name: name for name in groups})]


def measure_suite(sets: dict[str, Measured], reference: EvalResult | None) -> tuple[dict[str, MetricValue], dict[str, str]]:
    """Every suite metric: (measured, skipped with why)."""
    measured, skipped = {}, {}
    for metric in SUITE_METRICS:
        for outcome in metric.function(sets, reference):
            if isinstance(outcome, Skipped):
                skipped[outcome.key] = outcome.reason
            else:
                measured[outcome.key] = MetricValue.measured(outcome.key, metric.name, outcome.scope, metric.aggregate,
                                                             outcome.groups, outcome.units, outcome.params)
    return measured, skipped
