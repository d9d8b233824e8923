"""The evaluation a run does before and after training, and the before/after table it prints.

``RunEvaluator`` is the runner's ``evaluate_fn``: the project's suite at its tier, with the
"before" numbers of an unmodified base model taken from the cache when the same model and data
were evaluated earlier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from unlearn_studio.core.evaluation.evaluate import EvalResult, EvalSuite, evaluate
from unlearn_studio.core.project.config import RunConfig

# The headline rows of the before/after table, and the way each should move when unlearning works:
# "down" (forget side), "up", or "hold" (retain side: stays where it was).
HEADLINE = (
    ("forget/value_acc", "down", "forget: value accuracy"),
    ("forget/prob", "down", "forget: answer probability"),
    ("forget/rouge_l", "down", "forget: ROUGE-L recall"),
    ("forget_quality_log10", "up", "forget quality (log10 p)"),
    ("mia/auc_min_k", "down", "membership AUC (Min-K%)"),
    ("retain/value_acc", "hold", "retain: value accuracy"),
    ("retain/prob", "hold", "retain: answer probability"),
    ("holdout/value_acc", "hold", "holdout: value accuracy"),
    ("model_utility", "hold", "model utility"),
    ("general/perplexity", "hold", "general perplexity"),
    ("secrets_forget/ma", "down", "forget secrets: MA"),
    ("secrets_forget/el", "down", "forget secrets: EL"),
    ("secrets_retain/ma", "hold", "retain secrets: MA"),
    ("saga_mcq/accuracy", "hold", "saga MCQ accuracy"),
    ("neighbour_mcq/accuracy", "hold", "neighbour saga MCQ accuracy"),
    ("harmful/harmful_rate", "hold", "harmful-answer rate"),
    ("truthfulness/accuracy", "hold", "truthfulness"),
    ("fluency/rep_4", "hold", "repetition (rep-4)"),
)
HOLD_TOLERANCE = 0.05  # relative change that still counts as "held"
HOLD_ABSOLUTE = 0.005  # ... and an absolute one, for metrics near zero (rep-4 0.0003 -> 0 is held)


class RunEvaluator:
    """``evaluate_fn(model, tokenizer, phase, out_dir)`` for the runner."""

    def __init__(self, config: RunConfig, *, cache_dir: str | Path | None = None):
        self.suite = EvalSuite.for_config(config)
        self.tier = config.evaluation.suite
        self.model_dir = config.resolve_model_path()
        self.cache_dir = cache_dir
        self.results: dict[str, EvalResult] = {}

    def __call__(self, model, tokenizer, phase: str, out_dir: Path | None = None) -> EvalResult:
        result = evaluate(
            model, tokenizer, self.suite, tier=self.tier, out_dir=out_dir, cache_dir=self.cache_dir,
            # Before training the model is the unmodified base: its numbers are cached per model and data.
            base_model_dir=self.model_dir if phase == "before" and Path(self.model_dir).is_dir() else None,
            before=self.results.get("before"),
        )
        self.results[phase] = result
        return result


@dataclass(frozen=True)
class Comparison:
    key: str
    label: str
    before: float
    after: float
    expected: str  # "down" | "up" | "hold"

    @property
    def verdict(self) -> str:
        """"ok" when the metric moved the way unlearning wants, "bad" when the other way, "" unknown."""
        if math.isnan(self.before) or math.isnan(self.after):
            return ""
        change = self.after - self.before
        if self.expected == "hold":
            return "ok" if abs(change) <= max(HOLD_TOLERANCE * abs(self.before), HOLD_ABSOLUTE) else "bad"
        return "ok" if (change < 0) == (self.expected == "down") and change != 0 else "bad"


def compare(before: dict[str, float], after: dict[str, float],
            expected_moves: dict[str, str] | None = None) -> list[Comparison]:
    """The headline metrics present in both phases, in table order. ``expected_moves`` (a
    method's own, e.g. SKU's {"harmful/harmful_rate": "down"}) overrides the default direction."""
    moves = expected_moves or {}
    return [Comparison(key, label, before[key], after[key], moves.get(key, expected))
            for key, expected, label in HEADLINE if key in before and key in after]


def format_table(rows: list[Comparison]) -> str:
    marks = {"ok": "✓", "bad": "✗", "": " "}
    arrows = {"down": "should fall", "up": "should rise", "hold": "should hold"}
    width = max((len(r.label) for r in rows), default=10)
    lines = [f"{'metric':<{width}}  {'before':>9}  {'after':>9}     expected"]
    for r in rows:
        lines.append(f"{r.label:<{width}}  {r.before:>9.4g}  {r.after:>9.4g}  {marks[r.verdict]}  {arrows[r.expected]}")
    return "\n".join(lines)
