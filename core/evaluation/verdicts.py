"""Verdicts: a run's before/after change judged against each metric's target, with its uncertainty.

``judge(before, after)`` compares two results of one suite metric by metric. Every change gets
a 95% interval from its items (core/evaluation/stats.py; paired, the same items before and after)
and, for accuracies and rates, an exact test. The verdict is one of:

- reached: at the target (within its tolerance, or not significantly different from a measured
  target level); for kept metrics: within the tolerance of before, or better.
- short: moved significantly toward the target, not there yet ("moved but short").
- none: no significant change (and not at the target); toward a target level, a significant
  change smaller than the tolerance counts as none too.
- wrong_way: moved significantly away from the target (kept metrics: got significantly worse
  than the tolerance allows).
- overshot: past the target in the direction of forgetting (over-unlearning).

Headline rows (``Row.headline``) are the ones a person reads first, and the summary counts their
verdicts; a forget set with held-out paraphrases has its paraphrase rows in the headline and its
trained-phrasing rows beside them (``Judgement.paraphrase``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from unlearn_studio.core.evaluation.registry import Metric
from unlearn_studio.core.evaluation.result import EvalResult, MetricValue
from unlearn_studio.core.evaluation.stats import exact_p, interval, significant
from unlearn_studio.core.evaluation.suite import PARAPHRASE
from unlearn_studio.core.evaluation.targets import FORGET, KEEP, Target, goal_for, metric_for, target_for

VERDICTS = {
    "reached": "reached the target",
    "short": "moved but short",
    "none": "no significant change",
    "wrong_way": "wrong way",
    "overshot": "overshot",
}
SUITE_HEADLINE = ("mia_auc_min_k", "forget_quality", "model_utility", "fluency_rep_4")


@dataclass
class Row:
    """One metric before and after, with its change, uncertainty, target and verdict."""

    key: str
    label: str
    meaning: str
    ideal: str
    scope: str
    role: str
    view: str
    headline: bool
    goal: str | None
    before: float
    after: float
    change_ci: tuple[float, float] = (math.nan, math.nan)
    p_value: float | None = None
    target: Target | None = None
    gap_ci: tuple[float, float] = (math.nan, math.nan)  # after − target level
    verdict: str | None = None
    reason: str = ""  # why there is no verdict
    note: str = ""

    @property
    def change(self) -> float:
        return self.after - self.before

    @property
    def test(self) -> str:
        return "exact" if self.p_value is not None else "bootstrap"

    def to_dict(self) -> dict:
        number = _plain
        return {
            "key": self.key, "label": self.label, "meaning": self.meaning, "ideal": self.ideal,
            "set": self.scope, "role": self.role, "view": self.view, "headline": self.headline, "goal": self.goal,
            "before": number(self.before), "after": number(self.after), "change": number(self.change),
            "ci": [number(v) for v in self.change_ci], "p_value": self.p_value, "test": self.test,
            "target": self.target.to_dict() if self.target else None,
            "target_gap_ci": [number(v) for v in self.gap_ci],
            "verdict": self.verdict, "verdict_text": VERDICTS.get(self.verdict, ""), "reason": self.reason,
            "note": self.note,
        }


def _plain(value: float):
    return value if isinstance(value, float) and math.isfinite(value) else (None if value is None else str(value))


@dataclass
class Judgement:
    rows: list[Row]
    unavailable: dict[str, str] = field(default_factory=dict)  # metric key -> why it was not measured
    paraphrase: list[tuple[Row, Row]] = field(default_factory=list)  # (trained phrasing, held-out paraphrase)
    warnings: list[str] = field(default_factory=list)
    suite: str = ""
    tier: str = ""

    @property
    def headline(self) -> list[Row]:
        return [row for row in self.rows if row.headline]

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for row in self.headline:
            if row.verdict is not None:
                counts[row.verdict] += 1
        return counts

    def summary_line(self) -> str:
        judged = sum(self.summary.values())
        parts = ", ".join(f"{count} {VERDICTS[verdict]}" for verdict, count in self.summary.items())
        open_rows = len(self.headline) - judged
        return f"{judged} headline metrics judged: {parts}" + (f"; {open_rows} without a target" if open_rows else "")

    def to_dict(self) -> dict:
        return {"suite": self.suite, "tier": self.tier, "summary": self.summary, "summary_line": self.summary_line(),
                "rows": [row.to_dict() for row in self.rows],
                "paraphrase": [{"trained": t.key, "paraphrase": p.key} for t, p in self.paraphrase],
                "unavailable": self.unavailable, "warnings": self.warnings}


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _forget_verdict(row: Row, metric: Metric, moved: bool, at_target: bool) -> str:
    if at_target:
        return "reached"
    if row.target.at_most is not None:  # a threshold (forget quality)
        return "none" if not moved else ("short" if _sign(row.change) > 0 else "wrong_way")
    forget_sign = -1 if metric.unlearned == "down" else 1
    if _sign(row.after - row.target.value) == forget_sign:
        return "overshot"
    if not moved:
        return "none"
    return "short" if _sign(row.change) == forget_sign else "wrong_way"


def _verdict(row: Row, metric: Metric, after: MetricValue, changed: bool) -> str:
    """``changed``: the change is significant. Toward a level, it must also exceed the target's
    tolerance to count as a move."""
    target = row.target
    moved = changed and (target.at_most is not None or row.goal == KEEP or abs(row.change) > target.tolerance)
    if row.goal == KEEP:
        worse = row.before - row.after if metric.better == "higher" else row.after - row.before
        if worse <= target.tolerance:
            return "reached"
        return "wrong_way" if moved else "none"
    if target.at_most is not None:  # harm threshold, forget quality
        ok = row.after <= target.value if target.at_most else row.after >= target.value
        if row.goal == FORGET:
            return _forget_verdict(row, metric, moved, ok)
        if ok:
            return "reached"
        toward = _sign(row.change) == (-1 if target.at_most else 1)
        return "none" if not moved else ("short" if toward else "wrong_way")
    gap = row.after - target.value
    if target.metric is not None or target.kind in ("chance", "level"):
        row.gap_ci = interval(after, target.metric if target.metric is not None else target.value,
                              paired=target.paired)
        p_gap = exact_p(after, target.metric if target.metric is not None else target.value, paired=target.paired)
        at_target = abs(gap) <= target.tolerance or not significant(p_gap, row.gap_ci)
    else:
        at_target = abs(gap) <= target.tolerance
    if row.goal == FORGET:
        return _forget_verdict(row, metric, moved, at_target)
    if at_target:  # IMPROVE
        return "reached"
    toward = _sign(row.change) == _sign(target.value - row.before)
    return "none" if not moved else ("short" if toward else "wrong_way")


def _headline(metric: Metric, value: MetricValue, after: EvalResult) -> bool:
    info = after.sets.get(value.scope)
    if not value.scope:
        return metric.name in SUITE_HEADLINE
    if info is None:
        return False
    if metric.name in SUITE_HEADLINE:  # membership and forget quality of a forget set
        headline = info.role == "forget"
    else:
        headline = info.role in metric.headline_roles
    if info.role == "forget" and not metric.kept:
        # The held-out paraphrase is the headline where a forget set has one.
        has_paraphrase = f"{info.source}.{PARAPHRASE}" in after.sets
        return headline and (info.view == PARAPHRASE or not has_paraphrase)
    return headline and info.view != PARAPHRASE


def _label(metric: Metric, value: MetricValue, after: EvalResult) -> str:
    if not value.scope:
        return metric.label
    info = after.sets.get(value.scope)
    where = value.scope if info is None or info.view != PARAPHRASE else f"{info.source} (paraphrased)"
    return f"{where}: {metric.label}"


def _row(metric: Metric, value: MetricValue, result: EvalResult, before: float) -> Row:
    """The row of ``value`` (a metric of ``result``), not judged yet."""
    info = result.sets.get(value.scope)
    role = info.role if info is not None else ""
    return Row(value.key, _label(metric, value, result), metric.meaning, metric.ideal, value.scope, role,
               info.view if info is not None else "", _headline(metric, value, result), goal_for(metric, role),
               before, value.value)


def judge(before: EvalResult, after: EvalResult) -> Judgement:
    """Every metric measured in both results, judged (see the module docstring)."""
    paired_sets = {name for name, info in after.sets.items()
                   if name in before.sets and before.sets[name].ids == info.ids}
    rows = []
    for key, value in after.metrics.items():
        metric = metric_for(value)
        row = _row(metric, value, after, before.metrics[key].value if key in before.metrics else math.nan)
        rows.append(row)
        if key not in before.metrics:
            row.reason = "not measured before training"
            continue
        if row.goal is None:
            row.reason = f"no target for this metric on a {row.role} set"
            continue
        if math.isnan(row.before) or math.isnan(row.after):
            row.reason = "no value before or after"
            continue
        previous = before.metrics[key]
        paired = set(value.units.values()) <= paired_sets
        row.change_ci = interval(value, previous, paired=paired)
        row.p_value = exact_p(value, previous, paired=paired)
        target = target_for(row.goal, after, value, metric, row.before, after.settings)
        if isinstance(target, str):
            row.reason = target
            continue
        row.target = target
        row.verdict = _verdict(row, metric, value, significant(row.p_value, row.change_ci))
        if metric.name == "mia_auc_min_k" and key.replace("mia_auc_min_k", "privleak") in after.metrics:
            row.note = f"PrivLeak {after.metrics[key.replace('mia_auc_min_k', 'privleak')].value:+.1f}"
    by_key = {row.key: row for row in rows}
    pairs = []
    for row in rows:
        info = after.sets.get(row.scope)
        if info is not None and info.view == PARAPHRASE and row.goal == FORGET:
            trained = by_key.get(row.key.replace(f"{row.scope}/", f"{info.source}/", 1))
            if trained is not None:
                pairs.append((trained, row))
    unavailable = {key: reason for key, reason in after.skipped.items()}
    unavailable.update({row.key: row.reason for row in rows if row.reason and row.goal is not None})
    return Judgement(rows, unavailable, pairs, list(after.warnings), after.suite, after.tier)


def describe(result: EvalResult) -> list[Row]:
    """One result on its own (no "before"): every metric with the interval of its value and, for
    forget metrics, its target and the interval of the distance to it."""
    rows = []
    for value in result.metrics.values():
        metric = metric_for(value)
        row = _row(metric, value, result, math.nan)
        row.change_ci = interval(value)  # here the interval of the value itself
        if row.goal == FORGET:
            target = target_for(FORGET, result, value, metric, math.nan, result.settings)
            if isinstance(target, Target):
                row.target = target
                level = target.metric if target.metric is not None else target.value
                row.gap_ci = interval(value, level, paired=target.paired)
            else:
                row.reason = target
        rows.append(row)
    return rows
