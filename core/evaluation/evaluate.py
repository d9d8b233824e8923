"""Evaluating one model on a suite.

``evaluate(model, tokenizer, suite, tier=...)`` measures every set of the suite, computes every
registered metric (core/evaluation/set_metrics.py, suite_metrics.py), takes the reference model's
numbers (measured once, then cached: core/evaluation/reference.py), checks for collapse against
``before`` and writes everything to ``out_dir/eval_items.json``. The model may be a base model or
a PeftModel (evaluated with its adapter on); it is left in the train/eval mode it came in.

``progress(EvaluationProgressEvent)`` hears after every batch which set is measured, how many of
its items are done and the time left; ``should_stop()`` is asked between batches and, once it
says True, the evaluation raises ``core.control.Cancelled``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from unlearn_studio.core.evaluation.caching import before_path, read_cached, write_cached
from unlearn_studio.core.evaluation.measure import measure, plan
from unlearn_studio.core.evaluation.metrics import fluency
from unlearn_studio.core.evaluation.passes import ModelPasses
from unlearn_studio.core.evaluation.progress import ProgressTracker, Report
from unlearn_studio.core.evaluation.reference import (
    cached_reference,
    measure_reference,
    reference_sets,
    reference_sizes,
)
from unlearn_studio.core.evaluation.result import ITEMS_FILE, EvalResult
from unlearn_studio.core.evaluation.scoring import planned_units
from unlearn_studio.core.evaluation.suite import EvalSuite, tier_sizes


def cached_before(model_dir: str | Path, suite: EvalSuite, *, tier: str = "fast",
                  cache_dir: str | Path | None = None) -> EvalResult | None:
    """The cached result of the unmodified model in ``model_dir`` on ``suite`` at ``tier``, or
    None when there is none (or it no longer matches the files)."""
    tier_sizes(tier)
    return read_cached(before_path(model_dir, suite, tier, cache_dir))


def evaluate(
    model,
    tokenizer,
    suite: EvalSuite,
    *,
    tier: str = "fast",
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    base_model_dir: str | Path | None = None,
    before: EvalResult | Mapping[str, float] | None = None,
    progress: Report | None = None,
    should_stop: Callable[[], bool] | None = None,
    phase: str = "",
) -> EvalResult:
    """Evaluate ``model`` on ``suite`` at ``tier`` ("fast", "demo" or "full").

    ``base_model_dir``: the folder the model was loaded from, unmodified: the result is taken
    from, or stored in, the "before" cache. ``before``: an earlier result (or its aggregates) to
    check for collapse against. ``cache_dir``: where the caches live (default: the app's cache
    folder). ``phase`` ("before", "after") is named in the progress events.
    """
    sizes = tier_sizes(tier)
    started = time.monotonic()
    if base_model_dir is not None:
        cached = cached_before(base_model_dir, suite, tier=tier, cache_dir=cache_dir)
        if cached is not None:
            if out_dir is not None:
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                cached.items_path = Path(shutil.copyfile(cached.items_path, Path(out_dir) / ITEMS_FILE))
            return cached

    loaded = suite.load()
    judge = suite.judge()
    tracker = ProgressTracker(progress, should_stop, phase=phase)
    passes = ModelPasses(model, tokenizer, tracker)
    reference = cached_reference(suite, loaded, tier, cache_dir)
    must_measure_reference = suite.reference_model is not None and reference is None and reference_sets(loaded)
    plan(passes, loaded, lambda _: sizes)
    if must_measure_reference:
        sizes_of = reference_sizes(tier)
        tracker.plan(sum(planned_units(s, sizes_of(s))[1] for s in reference_sets(loaded)))
        reference = measure_reference(suite, loaded, tier, device=passes.device.type, cache_dir=cache_dir,
                                      tracker=tracker)
    measurement = measure(passes, loaded, lambda _: sizes, judge, reference=reference)

    result = EvalResult(
        suite.name, tier, measurement.metrics, measurement.sets, measurement.items, measurement.skipped,
        reference.metrics if reference is not None else {}, reference.sets if reference is not None else {},
        settings={"tolerance": suite.settings.tolerance, "harm_threshold": suite.settings.harm_threshold,
                  "reference_model": str(suite.reference_model) if suite.reference_model else None,
                  "harm_judge": suite.harm_judge})
    if before is not None:
        earlier = before.aggregates if isinstance(before, EvalResult) else before
        result.warnings = fluency.collapse_warnings(earlier, result.aggregates)
        result.collapse_checked = True
    result.seconds = time.monotonic() - started
    if out_dir is not None:
        result.write(Path(out_dir) / ITEMS_FILE)
    if base_model_dir is not None:
        path = before_path(base_model_dir, suite, tier, cache_dir)
        write_cached(path, result)
        if result.items_path is None:
            result.items_path = path
    return result
