"""A run's evaluation as the app shows it: the before/after table with verdicts, the per-item
answers of the original and the unlearned model side by side, collapse warnings, and the
project's forget-quality / utility frontier. ``evaluate_run`` evaluates a run that has an
adapter but no "after" numbers (e.g. one that was stopped and saved)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.metrics.fluency import collapse_warnings
from unlearn_studio.core.evaluation.run_evaluation import Comparison, compare
from unlearn_studio.core.run.sweep import FRONTIER_X, FRONTIER_Y, SweepPoint, mark_frontier

GENERATED_SETS_FIRST = ("forget", "retain", "holdout")


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
    run_id: str
    status: str
    method: str
    suite: str = ""
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
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
                                  item["generation"], old.get("value_correct"), item.get("value_correct")))
        if pairs:
            out[name] = pairs
    return out


def load_run_report(store, run_id: str) -> RunReport:
    from unlearn_studio.core.methods.registry import get_method

    run = store.run(run_id)
    try:
        moves = get_method(run["method"]).expected_moves
    except UserError:
        moves = {}
    report = RunReport(run_id, run["status"], run["method"] or "")
    evaluations = store.evaluations(run_id)
    before, after = _latest(evaluations, "before"), _latest(evaluations, "after")
    if before is not None:
        report.before, report.suite = before["aggregates"], before["suite"]
    if after is not None:
        report.after, report.suite = after["aggregates"], after["suite"]
    if report.complete:
        report.comparisons = compare(report.before, report.after, moves)
        after_items = _read_items(after)
        report.items = _pairs(_read_items(before), after_items)
        report.warnings = list(after_items.get("warnings") or collapse_warnings(report.before, report.after))
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


def evaluate_run(store, run_id: str) -> RunReport:
    """Evaluate the run's adapter (and the original model when "before" is missing) and record both."""
    from unlearn_studio.core.evaluation.run_evaluation import RunEvaluator
    from unlearn_studio.core.model.loading import load_adapter, load_model

    run = store.run(run_id)
    config = store.run_config(run_id)
    adapter = Path(run["output_dir"] or "") / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(f"Run {run_id} has no saved adapter ({adapter})",
                        "Only finished or stopped-and-saved runs can be evaluated; resume the run first.")
    if config.evaluation.suite == "none":
        config.evaluation.suite = "fast"  # asked for explicitly, so evaluate at the quick tier
    loaded = load_model(config.resolve_model_path(), dtype=config.model.dtype, device=config.model.device,
                        trust_remote_code=config.model.trust_remote_code, allow_network=config.model.allow_network)
    model = load_adapter(loaded.model, adapter)
    model.eval()
    evaluator = RunEvaluator(config)
    evaluations = store.evaluations(run_id)
    out = Path(run["output_dir"]) / "evaluation"
    earlier = _latest(evaluations, "before")
    if earlier is None:
        with model.disable_adapter():
            result = evaluator(model, loaded.tokenizer, "before", out / "before")
        store.add_evaluation(run_id, "before", config.evaluation.suite, result.aggregates, result.items_path)
    else:
        evaluator.results["before"] = earlier["aggregates"]
    result = evaluator(model, loaded.tokenizer, "after", out / "after")
    store.add_evaluation(run_id, "after", config.evaluation.suite, result.aggregates, result.items_path)
    return load_run_report(store, run_id)
