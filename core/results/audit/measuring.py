"""Measurements the audit makes, through the evaluation (the same passes, scoring and metrics as a
run's evaluation), and its progress and cancel.

One difference, on question/answer sets (not harmful ones): greedy answers stop at the longest
reference answer's length plus ``ANSWER_SLACK`` tokens instead of the evaluation's 48. The value
a model knows is stated within an answer's length; the evaluation's longer answers serve ROUGE-L
and repetition, which the audit does not read, and a model that unlearning left looping spends
all 48 tokens on every answer. The same limit holds for the three models.

The whole audit is one ``ProgressTracker`` (core/evaluation/progress.py): its work is planned up
front in units, one per row passed through a model (a relearning step counts its batch three
times: a forward and a backward pass), so that one bar and one time-left estimate cover it all,
and it asks ``should_stop()`` between batches and steps. What it reports goes out as
``AuditProgress``: the stage, what is being done, the units done of the total, the time left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from unlearn_studio.core.data.templates import format_prompt
from unlearn_studio.core.evaluation.measure import measure
from unlearn_studio.core.evaluation.metrics.answers import value_correct
from unlearn_studio.core.evaluation.passes import ModelPasses
from unlearn_studio.core.evaluation.progress import ProgressTracker
from unlearn_studio.core.evaluation.registry import measure_set
from unlearn_studio.core.evaluation.result import MetricValue
from unlearn_studio.core.evaluation.scoring import QA_MAX_NEW_TOKENS, planned_units, score_answers, template_for
from unlearn_studio.core.evaluation.set_metrics import SET_METRICS
from unlearn_studio.core.evaluation.suite import Judge, LoadedSet, TierSizes, first
from unlearn_studio.core.events import EvaluationProgressEvent

TRAINING_PASSES = 3  # a training step costs about three forward passes of its batch
ANSWER_SLACK = 8  # tokens a greedy answer may run past the longest reference answer
# Columns left out of the rows the audit measures: the truth ratio's wrong answers cost five
# scored sequences per item and the audit reads no truth ratio.
UNREAD_COLUMNS = ("wrong_answers",)


@dataclass(frozen=True)
class AuditProgress:
    """How far an audit has come: ``done`` of ``total`` units of work, and the time left."""

    run_id: str
    stage: str  # "relearn" | "prompts" | "probes" | "" (loading)
    what: str  # e.g. "unlearned model, forget slice, step 10 of 50"
    done: int
    total: int
    eta_s: float | None = None


def audit_sizes(items: int) -> TierSizes:
    """Every set measured on its first ``items`` items; no extraction likelihood (EL_n takes one
    greedy continuation per cut point of every record, and the audit reads MA)."""
    return TierSizes(scored=items, generated=items, records=items, extracted=0)


def answers_only(loaded: LoadedSet) -> bool:
    """Whether the set's headline is value accuracy (measured on shorter answers, see above)."""
    return loaded.kind == "qa" and loaded.role != "harmful"


def answer_tokens(loaded: LoadedSet, tokenizer, rows: list[dict]) -> int:
    """New tokens a greedy (or sampled) answer to ``rows`` gets."""
    if not answers_only(loaded):
        return QA_MAX_NEW_TOKENS
    longest = max((len(tokenizer(row["answer"], add_special_tokens=False)["input_ids"]) for row in rows), default=0)
    return min(QA_MAX_NEW_TOKENS, longest + ANSWER_SLACK)


def lean(loaded: LoadedSet) -> LoadedSet:
    """The set without the columns the audit does not read."""
    rows = [{k: v for k, v in row.items() if k not in UNREAD_COLUMNS} for row in loaded.rows]
    return replace(loaded, rows=rows)


class AuditMeter:
    """Measures models on sets for the audit, reporting to one tracker."""

    def __init__(self, tokenizer, judge: Judge | None, items: int, *, run_id: str = "",
                 progress: Callable[[AuditProgress], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.tokenizer = tokenizer
        self.judge = judge
        self.sizes = audit_sizes(items)
        self.run_id = run_id
        self.progress = progress
        self.stage = ""
        self.tracker = ProgressTracker(self._relay if progress is not None else None, should_stop)

    def _relay(self, event: EvaluationProgressEvent) -> None:
        self.progress(AuditProgress(self.run_id, self.stage, event.set_name, self.tracker.done_units,
                                    self.tracker.total_units, event.eta_s))

    def units(self, loaded: LoadedSet, items: int | None = None) -> int:
        """Units one measurement of ``loaded`` (on ``items`` items, default the audit's) takes."""
        sizes = self.sizes if items is None else audit_sizes(items)
        if answers_only(loaded):
            return 2 * len(first(loaded.rows, sizes.generated))
        return planned_units(loaded, sizes)[1]

    def plan(self, units: int) -> None:
        self.tracker.plan(units)

    def begin(self, stage: str, what: str, items: int, units: int) -> None:
        """Work that is not a measurement (training steps, probes) starts; raises Cancelled if asked."""
        self.stage = stage
        self.tracker.start_set(what, items, units)

    def advance(self, units: int) -> None:
        self.tracker.advance(units)

    def skip(self, units: int) -> None:
        """Planned work taken from an earlier audit leaves the plan (the ETA counts what is left);
        raises Cancelled if asked."""
        self.tracker.total_units = max(self.tracker.done_units, self.tracker.total_units - units)
        self.tracker.check()

    def measure(self, model, loaded: LoadedSet, what: str, items: int | None = None) -> dict[str, MetricValue]:
        """Every metric of ``loaded`` on ``model`` (keys without the set's name: "value_acc"), on its
        first ``items`` items (default: the audit's)."""
        passes = ModelPasses(model, self.tokenizer, self.tracker)
        sizes = self.sizes if items is None else audit_sizes(items)
        if answers_only(loaded):
            metrics = self._answers(passes, loaded, first(loaded.rows, sizes.generated), what)
        else:
            metrics = measure(passes, [loaded], lambda _: sizes, self.judge, label=f"{what}: ").metrics
        prefix = f"{loaded.name}/"
        return {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}

    def _answers(self, passes: ModelPasses, loaded: LoadedSet, rows: list[dict], what: str) -> dict[str, MetricValue]:
        """The evaluation's scoring of the answers and its value check of shorter greedy answers,
        then every registered metric those observations give (value accuracy, answer probability)."""
        self.tracker.start_set(f"{what}: {loaded.name}", len(rows), 2 * len(rows))
        was_training = passes.model.training
        passes.model.eval()
        try:
            template = template_for(loaded, self.tokenizer)
            items = score_answers(passes, rows, template)
            prompts = [format_prompt(r["question"], template, self.tokenizer, history=r.get("history")) for r in rows]
            texts = passes.greedy(prompts, template != "chat", answer_tokens(loaded, self.tokenizer, rows))
        finally:
            passes.model.train(was_training)
        for item, row, text in zip(items, rows, texts, strict=True):
            item.update(generation=text, value_correct=value_correct(text, row))
        return measure_set(SET_METRICS, loaded.name, loaded.kind, loaded.role, rows, items, has_judge=False)[0]
