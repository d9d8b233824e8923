"""One model measured on a list of sets: the passes set by set, then every registered metric.

Used for the evaluated model (core/evaluation/evaluate.py) and for the reference model
(core/evaluation/reference.py) alike, so both are measured the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from unlearn_studio.core.evaluation.passes import ModelPasses
from unlearn_studio.core.evaluation.registry import measure_set
from unlearn_studio.core.evaluation.result import EvalResult, MetricValue, SetInfo
from unlearn_studio.core.evaluation.scoring import planned_units, score_set
from unlearn_studio.core.evaluation.set_metrics import SET_METRICS
from unlearn_studio.core.evaluation.suite import Judge, LoadedSet, TierSizes
from unlearn_studio.core.evaluation.suite_metrics import Measured, measure_suite

SizesOf = Callable[[LoadedSet], TierSizes]  # how many items of each set are measured


@dataclass
class Measurement:
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    items: dict[str, list[dict]] = field(default_factory=dict)
    sets: dict[str, SetInfo] = field(default_factory=dict)


def plan(passes: ModelPasses, loaded: list[LoadedSet], sizes_of: SizesOf) -> None:
    """Tell the progress tracker how much work the sets will take."""
    passes.tracker.plan(sum(planned_units(s, sizes_of(s))[1] for s in loaded))


def measure(passes: ModelPasses, loaded: list[LoadedSet], sizes_of: SizesOf, judge: Judge | None, *,
            reference: EvalResult | None = None, label: str = "") -> Measurement:
    """Score every set with ``passes`` (its model in eval mode meanwhile), then compute the set
    metrics and the suite metrics (against ``reference`` where they need it)."""
    out = Measurement()
    model = passes.model
    was_training = model.training
    model.eval()
    try:
        for loaded_set in loaded:
            sizes = sizes_of(loaded_set)
            items, units = planned_units(loaded_set, sizes)
            passes.tracker.start_set(f"{label}{loaded_set.name}", items, units)
            out.items[loaded_set.name] = score_set(passes, loaded_set, sizes, judge)
    finally:
        model.train(was_training)
    for loaded_set in loaded:
        items = out.items[loaded_set.name]
        measured, skipped = measure_set(SET_METRICS, loaded_set.name, loaded_set.kind, loaded_set.role,
                                        loaded_set.rows, items, has_judge=judge is not None)
        out.metrics.update(measured)
        out.skipped.update(skipped)
        out.sets[loaded_set.name] = SetInfo(loaded_set.role, loaded_set.kind, loaded_set.view,
                                            [item["id"] for item in items], loaded_set.spec.name)
    views = {s.name: Measured(s.name, s.role, s.kind, s.view, out.items[s.name]) for s in loaded}
    measured, skipped = measure_suite(views, reference)
    out.metrics.update(measured)
    out.skipped.update(skipped)
    return out
