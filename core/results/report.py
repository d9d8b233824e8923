"""A run's evaluation as the app shows it: the before/after judgement (every metric with its
change, 95% interval, target and verdict; core/evaluation/verdicts.py), the per-item answers of
the original and the unlearned model side by side, collapse warnings, and the project's
forget-quality / utility frontier. ``evaluate_run`` evaluates a run that has an adapter but no
"after" numbers (e.g. one that was stopped and saved), with progress and cancel."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.progress import Report
from unlearn_studio.core.evaluation.result import EvalResult, load_result
from unlearn_studio.core.evaluation.run_evaluation import RunEvaluator
from unlearn_studio.core.evaluation.verdicts import Judgement, judge
from unlearn_studio.core.model.loading import load_adapter, load_model
from unlearn_studio.core.run.sweep import FRONTIER_X, FRONTIER_Y, SweepPoint, mark_frontier

GENERATED_SETS_FIRST = ("forget", "forget.paraphrase", "retain", "holdout")


@dataclass(frozen=True)
class ItemPair:
    question: str
    reference: str
    before: str
    after: str
    before_correct: bool | None
    after_correct: bool | None


@dataclass(frozen=True)
class FrontierPoint:
    run_id: str
    label: str
    utility: float
    forget_quality: float
    on_frontier: bool


@dataclass
class RunReport:
    """``judgement`` is None until both phases are evaluated, or when the evaluation files are
    missing or of an older layout (``note`` says which)."""

    run_id: str
    status: str
    method: str
    suite: str = ""
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    judgement: Judgement | None = None
    note: str = ""
    items: dict[str, list[ItemPair]] = field(default_factory=dict)  # set name -> pairs with both answers
    warnings: list[str] = field(default_factory=list)
    frontier: list[FrontierPoint] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.before) and bool(self.after)


def _latest(evaluations: list[dict], phase: str) -> dict | None:
    chosen = [e for e in evaluations if e["phase"] == phase]
    return chosen[-1] if chosen else None


def _read_items(evaluation: dict | None) -> dict:
    path = evaluation and evaluation.get("items_path")
    if not path or not Path(path).is_file():
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError:
        return {}


def _correct(item: dict) -> bool | None:
    if "value_correct" in item:
        return item["value_correct"]
    return None if item.get("harmful") is None else not item["harmful"]


def _pairs(before: dict, after: dict) -> dict[str, list[ItemPair]]:
    out: dict[str, list[ItemPair]] = {}
    before_sets, after_sets = before.get("items", {}), after.get("items", {})
    names = [n for n in GENERATED_SETS_FIRST if n in after_sets] + [n for n in after_sets if n not in GENERATED_SETS_FIRST]
    for name in names:
        earlier = {item.get("id"): item for item in before_sets.get(name, [])}
        pairs = []
        for item in after_sets[name]:
            if "generation" not in item or "question" not in item:
                continue
            old = earlier.get(item.get("id"), {})
            pairs.append(ItemPair(item["question"], item.get("answer", ""), old.get("generation", ""),
                                  item["generation"], _correct(old) if old else None, _correct(item)))
        if pairs:
            out[name] = pairs
    return out


def _judgement(before: dict, after: dict) -> tuple[Judgement | None, str]:
    try:
        return judge(load_result(before["items_path"] or ""), load_result(after["items_path"] or "")), ""
    except UserError as exc:
        return None, exc.problem


def load_run_report(store, run_id: str) -> RunReport:
    run = store.run(run_id)
    report = RunReport(run_id, run["status"], run["method"] or "")
    evaluations = store.evaluations(run_id)
    before, after = _latest(evaluations, "before"), _latest(evaluations, "after")
    if before is not None:
        report.before, report.suite = before["aggregates"], before["suite"]
    if after is not None:
        report.after, report.suite = after["aggregates"], after["suite"]
    if report.complete:
        report.judgement, report.note = _judgement(before, after)
        after_items = _read_items(after)
        report.items = _pairs(_read_items(before), after_items)
        report.warnings = list(after_items.get("warnings") or [])
    report.frontier = project_frontier(store, run["project_id"])
    return report


def project_frontier(store, project_id: int) -> list[FrontierPoint]:
    """Every evaluated run of the project as a point (utility, forget quality), frontier marked."""
    points, labels = [], {}
    for number, run in enumerate(store.runs(project_id), 1):
        after = _latest(store.evaluations(run["id"]), "after")
        if after is None:
            continue
        metrics = {k: after["aggregates"].get(k, math.nan) for k in (FRONTIER_X, FRONTIER_Y)}
        if any(v is None or math.isnan(v) for v in metrics.values()):
            continue
        points.append(SweepPoint({}, run["id"], run["status"], metrics))
        labels[run["id"]] = f"#{number} {run['method']}"
    mark_frontier(points)
    return [FrontierPoint(p.run_id, labels[p.run_id], *p.xy(), p.on_frontier) for p in points]


def _stored_before(evaluation: dict | None) -> EvalResult | None:
    """The run's recorded "before" result, if its file can still be judged."""
    if evaluation is None or not evaluation.get("items_path"):
        return None
    try:
        return load_result(evaluation["items_path"])
    except UserError:
        return None


def evaluate_run(store, run_id: str, *, progress: Report | None = None,
                 should_stop: Callable[[], bool] | None = None) -> RunReport:
    """Evaluate the run's adapter (and the original model when its "before" result is missing or
    too old to judge) and record both. ``progress`` hears EvaluationProgressEvents with this
    run's id; ``should_stop()`` True ends the evaluation with ``core.control.Cancelled``."""
    run = store.run(run_id)
    config = store.run_config(run_id)
    adapter = Path(run["output_dir"] or "") / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(f"Run {run_id} has no saved adapter ({adapter})",
                        "Only finished or stopped-and-saved runs can be evaluated; resume the run first.")
    if config.evaluation.suite == "none":
        config.evaluation.suite = "fast"  # asked for explicitly, so evaluate at the quick tier
    evaluator = RunEvaluator(config)
    tagged = (lambda event: progress(dataclasses.replace(event, run_id=run_id))) if progress else None
    loaded = load_model(config.resolve_model_path(), dtype=config.model.dtype, device=config.model.device,
                        trust_remote_code=config.model.trust_remote_code, allow_network=config.model.allow_network)
    model = load_adapter(loaded.model, adapter)
    model.eval()
    out = Path(run["output_dir"]) / "evaluation"
    earlier = _stored_before(_latest(store.evaluations(run_id), "before"))
    if earlier is None:
        with model.disable_adapter():
            result = evaluator(model, loaded.tokenizer, "before", out / "before", progress=tagged,
                               should_stop=should_stop)
        store.add_evaluation(run_id, "before", config.evaluation.suite, result.aggregates, result.items_path)
    else:
        evaluator.results["before"] = earlier
    result = evaluator(model, loaded.tokenizer, "after", out / "after", progress=tagged, should_stop=should_stop)
    store.add_evaluation(run_id, "after", config.evaluation.suite, result.aggregates, result.items_path)
    return load_run_report(store, run_id)
