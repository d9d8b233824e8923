"""The reference model: a model trained without the forget data (a retain model).

It is measured on the suite's forget sets (every view) with the same passes and metrics as the
evaluated model, and on its holdout sets by their scores alone (no greedy answers: only the
membership AUC needs them). Its numbers are the target level of every forget metric, its truth
ratios the other side of forget quality's KS test, and its membership AUC the baseline of
PrivLeak. Measured once per reference model, sets and tier, then read from the cache.
"""

from __future__ import annotations

from dataclasses import replace

from unlearn_studio.core.evaluation.caching import read_cached, reference_path, write_cached
from unlearn_studio.core.evaluation.measure import measure
from unlearn_studio.core.evaluation.passes import ModelPasses
from unlearn_studio.core.evaluation.progress import ProgressTracker
from unlearn_studio.core.evaluation.result import EvalResult
from unlearn_studio.core.evaluation.suite import EvalSuite, LoadedSet, TierSizes, tier_sizes
from unlearn_studio.core.model.loading import load_model

REFERENCE_ROLES = ("forget", "holdout")
LABEL = "reference model: "  # how its sets are named in progress reports


def reference_sets(loaded: list[LoadedSet]) -> list[LoadedSet]:
    return [s for s in loaded if s.role in REFERENCE_ROLES]


def reference_sizes(tier: str):
    """Sizes per set for the reference: a holdout set is scored, never answered or extracted."""
    sizes = tier_sizes(tier)
    scored_only = replace(sizes, generated=0, extracted=0)

    def sizes_of(loaded_set: LoadedSet) -> TierSizes:
        return scored_only if loaded_set.role == "holdout" else sizes
    return sizes_of


def cached_reference(suite: EvalSuite, loaded: list[LoadedSet], tier: str, cache_dir) -> EvalResult | None:
    """The reference's result from the cache; None when it must be measured (or there is none)."""
    chosen = reference_sets(loaded)
    if suite.reference_model is None or not chosen:
        return None
    return read_cached(reference_path(suite, _specs(chosen), tier, cache_dir))


def measure_reference(suite: EvalSuite, loaded: list[LoadedSet], tier: str, *, device: str, cache_dir,
                      tracker: ProgressTracker) -> EvalResult:
    """Load the reference model, measure it on the forget and holdout sets (the tracker has its
    work planned already), cache the result."""
    chosen = reference_sets(loaded)
    reference = load_model(suite.reference_model, device=device)
    passes = ModelPasses(reference.model, reference.tokenizer, tracker)
    measurement = measure(passes, chosen, reference_sizes(tier), suite.judge(), label=LABEL)
    result = EvalResult(f"{suite.name} (reference)", tier, measurement.metrics, measurement.sets,
                        measurement.items, measurement.skipped,
                        settings={"reference_model": str(suite.reference_model)})
    write_cached(reference_path(suite, _specs(chosen), tier, cache_dir), result)
    return result


def _specs(chosen: list[LoadedSet]):
    seen, specs = set(), []
    for s in chosen:
        if s.spec.name not in seen:
            seen.add(s.spec.name)
            specs.append(s.spec)
    return specs
