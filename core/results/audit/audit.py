"""The audit of one finished run: everything checked and planned before the work, then the attacks
the settings ask for, the verdict, and the result kept with the run.

``audit_run(store, run_id, settings, progress=..., should_stop=...)`` is what the app's Audit tab
and ``unlearn-studio audit`` call. Bad input (a run without an adapter, a project without a set to
attack, an unusable setting) raises ``UserError`` before anything is loaded or written; a cancel
(``should_stop()`` true) raises ``core.control.Cancelled`` between batches or steps and records
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.set_metrics import SET_METRICS
from unlearn_studio.core.evaluation.suite import EvalSuite
from unlearn_studio.core.results.audit import result as stored
from unlearn_studio.core.results.audit.measuring import AuditMeter, AuditProgress, lean
from unlearn_studio.core.results.audit.models import MODEL_WORDS, ORIGINAL, AuditModels
from unlearn_studio.core.results.audit.probing import Probing, probe_sets
from unlearn_studio.core.results.audit.prompt_attacks import PromptAttacks
from unlearn_studio.core.results.audit.relearn import Relearning
from unlearn_studio.core.results.audit.reuse import Reuse, audit_cache_dir
from unlearn_studio.core.results.audit.settings import PROBES, PROMPTS, RELEARN, AuditSettings
from unlearn_studio.core.results.audit.targets import Target, choose_target, data_sources, forgotten_set
from unlearn_studio.core.results.audit.verdict import judge_audit
from unlearn_studio.core.results.finished_run import FinishedRun

ZERO_LEVEL_METRICS = ("value_acc", "harmful_rate")  # a model that never learned the facts states none


def _run_seconds(row: dict) -> float | None:
    try:
        return (datetime.fromisoformat(row["ended"]) - datetime.fromisoformat(row["started"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def _level(models: AuditModels, meter: AuditMeter, target: Target) -> tuple[float | None, dict | None]:
    """Without a reference model: the level the ratios compare with, as the evaluation's targets
    take it (the holdout set's, measured on the original model; chance; 0), or None."""
    if target.holdout is not None:
        measured = meter.measure(models.use(ORIGINAL), lean(target.holdout), "original model, holdout level")
        if target.metric in measured:
            value = measured[target.metric].value
            return value, {"kind": "holdout", "value": value,
                           "words": f"the holdout set '{target.holdout.name}' (never trained on), original model"}
    if target.metric == "accuracy" and target.kind == "mcq":
        chance = sum(1 / len(row["choices"]) for row in target.loaded.rows) / len(target.loaded.rows)
        return chance, {"kind": "chance", "value": chance, "words": "guessing (1 / number of choices)"}
    if target.metric in ZERO_LEVEL_METRICS:
        return 0.0, {"kind": "zero", "value": 0.0, "words": "0: a model that never learned the facts states none"}
    return None, None


class Audit:
    """One run's audit, checked and planned (``__init__``), then run (``run``)."""

    def __init__(self, store, run_id: str, settings: AuditSettings, *, record: bool = True,
                 reuse_dir: Path | None = None):
        if record and store.readonly:
            raise UserError("The project store is open read-only, so the audit could not be recorded.",
                            "Close the other Unlearn Studio window (or command) that writes to it, then audit again.")
        self.store, self.settings, self.record = store, settings, record
        self.reuse_dir = reuse_dir
        self.run = FinishedRun.from_store(store, run_id)
        self.config = self.run.config
        self.suite = EvalSuite.for_config(self.config)
        self.suite.check()
        self.loaded = self.suite.load()
        self.target = choose_target(self.config, self.suite, self.loaded)
        self.run_dir = Path(self.run.row["output_dir"] or "")
        if not self.run_dir.is_dir():
            raise UserError(f"The folder of run {run_id[:8]} ({self.run_dir}) is missing.",
                            "Audit a run whose folder is still on disk.")
        self.skipped: dict[str, str] = {}
        self.forgotten = forgotten_set(self.config, self.loaded)
        if RELEARN in settings.attacks and self.forgotten is None:
            self.skipped[RELEARN] = "the project has no forget (or harmful) data to take a slice of"
        self.probe_data = (probe_sets(self.config, self.loaded, self.target, settings.items)
                           if PROBES in settings.attacks else None)
        if isinstance(self.probe_data, str):
            self.skipped[PROBES] = self.probe_data

    def run_audit(self, progress: Callable[[AuditProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> stored.AuditResult:
        started = time.monotonic()
        run_id, settings, target = self.run.run_id, self.settings, self.target
        if progress is not None:
            progress(AuditProgress(run_id, "", "loading the models", 0, 0))
        models = AuditModels(self.config, self.run.adapter_dir, reference_dir=self.suite.reference_model,
                             rank=settings.rank, seed=settings.seed)
        judge = self.suite.judge()
        reuse = Reuse.for_audit(self.config, self.suite.reference_model, settings, self.reuse_dir)
        meter = AuditMeter(models.tokenizer, judge, settings.items, run_id=run_id, progress=progress,
                           should_stop=should_stop)
        parts = {}
        if RELEARN in settings.attacks and RELEARN not in self.skipped:
            sources, missing = data_sources(self.config, self.loaded)
            parts[RELEARN] = Relearning(models, meter, target, self.forgotten, sources, missing, settings,
                                        self.config.training.max_length, reuse)
        if PROMPTS in settings.attacks:
            parts[PROMPTS] = PromptAttacks(models, meter, target, settings, judge, reuse)
        if PROBES in settings.attacks and PROBES not in self.skipped:
            parts[PROBES] = Probing(models, meter, *self.probe_data, settings)
        has_reference = models.reference is not None
        meter.plan(sum(part.units() for part in parts.values())
                   + (0 if has_reference or target.holdout is None else meter.units(target.holdout)))
        level, level_words = (None, None) if has_reference else _level(models, meter, target)
        done = {name: (part.run() if name == PROBES else part.run(level)) for name, part in parts.items()}
        label = SET_METRICS.get(target.metric).label if target.metric in SET_METRICS else target.metric
        verdict = judge_audit(target.describe(), label, done.get(RELEARN), done.get(PROMPTS), done.get(PROBES),
                              has_reference)
        result = stored.AuditResult(
            run_id, self.config.method.name, self.config.name, settings, {**target.describe(), "label": label},
            {name: MODEL_WORDS[name] for name in models.names}, level_words, done.get(RELEARN), done.get(PROMPTS),
            done.get(PROBES), dict(self.skipped), verdict, time.monotonic() - started, _run_seconds(self.run.row),
            reused=reuse.reused)
        if self.record:
            stored.save(result, self.run_dir, self.store)
        return result


def audit_run(store, run_id: str, settings: AuditSettings | None = None, *,
              progress: Callable[[AuditProgress], None] | None = None, should_stop: Callable[[], bool] | None = None,
              record: bool = True, reuse: bool = True, reuse_dir: Path | None = None) -> stored.AuditResult:
    """Audit the finished run ``run_id`` (see the module docstring); ``record``: keep the result in
    the run's folder and the store; ``reuse``: keep the original's and the reference's measurements
    for later audits of the project, and take them from earlier ones (core/results/audit/reuse.py),
    in ``reuse_dir`` (default: the user cache folder)."""
    folder = (reuse_dir or audit_cache_dir()) if reuse else None
    return Audit(store, run_id, settings or AuditSettings(), record=record,
                 reuse_dir=folder).run_audit(progress, should_stop)
