"""The evaluation a run does before and after training: the runner's ``evaluate_fn``.

``RunEvaluator(config)`` builds the project's suite once (a UserError for bad evaluation settings
comes before anything is written) and is called by the runner as
``evaluate_fn(model, tokenizer, phase, out_dir, *, progress=None, should_stop=None)``. The
"before" numbers of an unmodified base model come from the cache when the same model and data
were evaluated earlier. ``judgement()`` judges the run's change once both phases are done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unlearn_studio.core.evaluation.evaluate import evaluate
from unlearn_studio.core.evaluation.progress import Report
from unlearn_studio.core.evaluation.result import EvalResult
from unlearn_studio.core.evaluation.suite import EvalSuite, tier_sizes
from unlearn_studio.core.evaluation.verdicts import Judgement, judge
from unlearn_studio.core.project.config import RunConfig


class RunEvaluator:
    """``evaluate_fn`` for the runner; keeps each phase's result in ``results``."""

    def __init__(self, config: RunConfig, *, cache_dir: str | Path | None = None):
        self.suite = EvalSuite.for_config(config)
        self.tier = "fast" if config.evaluation.suite == "none" else config.evaluation.suite
        tier_sizes(self.tier)
        self.suite.check()
        self.model_dir = config.resolve_model_path()
        # The cache is keyed by the model's folder: a quantized base is another model than the folder's.
        self.cacheable = config.model.quantization == "none"
        self.cache_dir = cache_dir
        self.results: dict[str, EvalResult] = {}

    def __call__(self, model, tokenizer, phase: str, out_dir: Path | None = None, *,
                 progress: Report | None = None, should_stop: Callable[[], bool] | None = None) -> EvalResult:
        result = evaluate(
            model, tokenizer, self.suite, tier=self.tier, out_dir=out_dir, cache_dir=self.cache_dir,
            # Before training the model is the unmodified base: its numbers are cached per model and data.
            base_model_dir=(self.model_dir if phase == "before" and self.cacheable and Path(self.model_dir).is_dir()
                            else None),
            before=self.results.get("before"), progress=progress, should_stop=should_stop, phase=phase,
        )
        self.results[phase] = result
        return result

    def judgement(self) -> Judgement | None:
        """The before/after judgement, once both phases were evaluated."""
        if "before" not in self.results or "after" not in self.results:
            return None
        return judge(self.results["before"], self.results["after"])
