"""The metric registry: every metric is one function plus one registration.

A registration says what the metric means in plain words (label, meaning, ideal value: the app's
tooltips and ``eval --explain``), how its number is made from per-item values (an aggregate of
core/evaluation/aggregates.py), which way a healthy model is better and which way unlearning moves
it, and what it needs: the kinds of set it applies to, the columns its rows must have, a harm
judge. A metric whose needs are missing is skipped with the reason, which the table shows.

Two registries: set metrics (core/evaluation/set_metrics.py), whose function turns one set's
per-item observations into per-item values, and suite metrics (core/evaluation/suite_metrics.py),
which combine sets (membership, forget quality, utility, fluency) and compute their values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from unlearn_studio.core.evaluation.result import MetricValue

SetValues = Callable[[list[dict], str], "dict[str, list[float]] | list[float]"]


@dataclass(frozen=True)
class Metric:
    """A registered metric (see the module docstring)."""

    name: str
    label: str
    meaning: str
    ideal: str
    aggregate: str
    better: str  # "higher" | "lower": the healthy direction, for metrics that must be kept
    unlearned: str  # "down" | "up": how forgetting moves it on forget data
    scale: str = "unit"  # "unit": values in [0, 1] (tolerance absolute); "ratio": tolerance relative
    kinds: tuple[str, ...] = ()  # set metrics: the kinds of set it applies to
    roles: tuple[str, ...] | None = None  # set metrics: only sets of these roles (None: any)
    columns: tuple[str, ...] = ()  # set metrics: columns some rows must have
    needs_judge: bool = False
    kept: bool = False  # judged as "keep it as it was" on every set (fluency), whatever the set's role
    headline_roles: tuple[str, ...] = ()  # roles whose table shows it among the headline rows
    chance: bool = False  # its items carry "chance": the level of guessing, a target without a reference
    function: Callable | None = None

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "meaning": self.meaning, "ideal": self.ideal,
                "better": self.better}


class Registry:
    """Metrics by name, in registration order (the table's order)."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def register(self, name: str, **fields) -> Callable[[Callable], Callable]:
        def decorate(function: Callable) -> Callable:
            if name in self._metrics:
                raise ValueError(f"metric {name!r} is registered twice")
            self._metrics[name] = Metric(name=name, function=function, **fields)
            return function
        return decorate

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._metrics.values())

    def __contains__(self, name: str) -> bool:
        return name in self._metrics

    def get(self, name: str) -> Metric:
        return self._metrics[name]


def _all_nan(groups: dict[str, list[float]]) -> bool:
    return all(all(math.isnan(v) for v in values) for values in groups.values())


def measure_set(registry: Registry, name: str, kind: str, role: str, rows: list[dict], items: list[dict], *,
                has_judge: bool) -> tuple[dict[str, MetricValue], dict[str, str]]:
    """Every set metric that applies to a set of this kind and role: (measured, skipped with why)."""
    measured, skipped = {}, {}
    for metric in registry:
        if kind not in metric.kinds or (metric.roles is not None and role not in metric.roles):
            continue
        key = f"{name}/{metric.name}"
        lacking = [c for c in metric.columns if not any(row.get(c) for row in rows)]
        if lacking:
            skipped[key] = f"needs the column {lacking[0]!r}, which no row of '{name}' has"
            continue
        if metric.needs_judge and not has_judge:
            skipped[key] = ("needs a harm judge: set evaluation.harm_judge to a function "
                            "(e.g. unlearn_studio.core.demo.judge:key_step_judge)")
            continue
        groups = metric.function(items, role)
        groups = groups if isinstance(groups, dict) else {"values": groups}
        if not items or _all_nan(groups):
            skipped[key] = "no item of the set could be measured" + (
                " (the harm judge decided none of its answers)" if metric.needs_judge else "")
            continue
        params = {"chance": sum(i["chance"] for i in items) / len(items)} if metric.chance else {}
        measured[key] = MetricValue.measured(key, metric.name, name, metric.aggregate, groups,
                                             dict.fromkeys(groups, name), params)
    return measured, skipped
