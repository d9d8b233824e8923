"""A run whose recipe trains with other methods, then combines what they trained: ``TrainWith``
stages and a ``Combine`` (Ext-Sub: an SFT expert, an SFT anti-expert, their combination).

Each ``TrainWith`` stage is an ordinary training run, recorded in the same project and kept in
``<run>/stages/``, so its curves, checkpoints and evaluation stay. The run itself holds the
combined adapter in ``<run>/adapter`` and ``stages.json`` (what each stage was, how it ended and
what it measured), and its events speak for one run: the stages' steps follow each other on one
curve, each stage's loss under its own name, and the run ends once. Every check runs before
anything is written, the first stage's model included; a run resumed from its folder keeps the
stages that finished and continues the others from their checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from unlearn_studio.core.control import Cancelled, RunControl
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import (
    EvaluationEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    Listener,
    LogEvent,
    StatusEvent,
    StepEvent,
)
from unlearn_studio.core.methods.base import Combine, TrainWith, UnlearningMethod
from unlearn_studio.core.model.loading import load_adapter, load_model
from unlearn_studio.core.project.config import MethodConfig, RunConfig
from unlearn_studio.core.run.checkpoint import ADAPTER, CHECKPOINTS, complete_checkpoints
from unlearn_studio.core.run.evaluation_hook import EvaluateFn, evaluate, wanted
from unlearn_studio.core.run.failures import SaveError, describe_failure
from unlearn_studio.core.run.preparation import (
    Prepared,
    check_data,
    check_project,
    prepare,
    resolve_method,
    total_steps,
)
from unlearn_studio.core.run.record import RunRecord, RunResult
from unlearn_studio.core.run.training_run import TrainingRun

STAGES_FILE = "stages.json"
STAGES_DIR = "stages"


def stage_config(config: RunConfig, stage: TrainWith, trained_roles: set[str], stages_dir: Path) -> RunConfig:
    """The run of one stage: the stage's data as its method's role, the project's other roles kept
    (the evaluation reads them), its output in ``stages_dir``; evaluated only if the stage says so."""
    derived = copy.deepcopy(config)
    derived.name = f"{config.name} [{stage.name}]"
    derived.method = MethodConfig(stage.method, {})
    derived.data = {stage.as_role: config.data[stage.data],
                    **{role: source for role, source in config.data.items() if role not in trained_roles}}
    derived.output.dir = str(stages_dir)
    if not stage.evaluate:
        derived.evaluation.before = derived.evaluation.after = False
    return derived


def comparison_table(title: str, stage: str, metrics: tuple[tuple[str, str], ...], before: dict[str, float],
                     alone: dict[str, float], combined: dict[str, float]) -> str:
    """A few lines: the base model, the stage's adapter alone and the run's result, side by side."""
    lines = [f"{f'{title} against the {stage} alone':<26}  {'base':>8}  {stage:>8}  {title:>8}  change"]
    for key, label in metrics:
        if key in alone and key in combined:
            base = before.get(key, math.nan)
            change = f"{(combined[key] - alone[key]) / abs(alone[key]) * 100:+.1f}%" if alone[key] else ""
            lines.append(f"{label:<26}  {base:>8.4g}  {alone[key]:>8.4g}  {combined[key]:>8.4g}  {change}")
    return "\n".join(lines)


class StagedRun:
    """One run of a staged recipe: its record, its stages and its events."""

    def __init__(self, config: RunConfig, method: UnlearningMethod, *, store=None, listener: Listener | None = None,
                 control: RunControl | None = None, evaluate_fn: EvaluateFn | None = None):
        self.config, self.method, self.store = config, method, store
        self.control = control or RunControl()
        self.evaluate_fn = evaluate_fn
        self.record = RunRecord(config, store, listener)
        self.training = [stage for stage in method.stages if isinstance(stage, TrainWith)]
        self.combination = next(stage for stage in method.stages if isinstance(stage, Combine))
        self.trained_roles = {stage.data for stage in self.training}
        self.stages: dict[str, dict[str, Any]] = {}  # stage name -> its record in stages.json
        self.before: dict[str, float] | None = None
        self.steps: dict[str, int] = {}
        self.steps_done = 0
        self.project_id: int | None = None

    @property
    def total_steps(self) -> int:
        return sum(self.steps.values())

    # ---- checks before anything is written ----------------------------------------------------------

    def check(self, resume: str | os.PathLike | None) -> Prepared | None:
        """Every input check of every stage; then the first stage still to train, prepared (its
        model loaded), or None when every stage has trained (a resumed run that only combines)."""
        config, method = self.config, self.method
        check_project(config, method)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError(f"The {method.title} recipe runs in one process, not under accelerate launch",
                            "Train each stage as a project of its own with accelerate launch, then combine "
                            "their adapters (for Ext-Sub: `unlearn-studio extsub`).")
        config.model_source()
        if resume is not None:
            self.load_stages(Path(resume))
        pending = None
        for stage in self.training:
            derived = stage_config(config, stage, self.trained_roles, Path("."))
            stage_method = resolve_method(derived)
            check_project(derived, stage_method)
            data = check_data(derived, stage_method)
            self.steps[stage.name] = total_steps(derived, stage_method, data, 1)[0]
            if pending is None and self.stages.get(stage.name, {}).get("status") != "finished":
                pending = stage
        if pending is None:
            return None
        return self.prepare_stage(pending)

    def prepare_stage(self, stage: TrainWith) -> Prepared:
        stages_dir = (self.record.output_dir or Path(".")) / STAGES_DIR
        derived = stage_config(self.config, stage, self.trained_roles, stages_dir)
        record = self.stages.get(stage.name, {})
        folder = record.get("output_dir")
        resume = folder if folder and complete_checkpoints(Path(folder) / CHECKPOINTS) else None
        return prepare(derived, resolve_method(derived), store=self.store, resume=resume,
                       should_stop=self.control.should_stop)

    def load_stages(self, folder: Path) -> None:
        """Take up an earlier run of this recipe from its folder."""
        path = folder / STAGES_FILE
        if not path.is_file():
            raise UserError(f"{folder} is not the folder of an {self.method.title} run (it has no {STAGES_FILE})",
                            f"Resume with the run's own folder (<output dir>/<run id>, which holds {STAGES_FILE}).")
        record = json.loads(path.read_text(encoding="utf-8"))
        self.record.run_id, self.record.output_dir = record["run_id"], folder.resolve()
        self.stages = record.get("stages", {})
        self.before = record.get("before")
        if self.store is not None:
            # A UserError when the run is not in this store; its stages join the same project.
            self.project_id = self.store.run(self.record.run_id)["project_id"]

    # ---- the run ----------------------------------------------------------------------------------

    def run(self, *, project_id: int | None = None, project_file: str | os.PathLike | None = None,
            resume: str | os.PathLike | None = None) -> RunResult:
        first = self.check(resume)
        try:
            self.open(project_id, project_file, resume is not None)
            for stage in self.training:
                result = self.train_stage(stage, first)
                first = None
                if result.status != "finished":
                    return self.end_early(stage, result)
            self.record.status("combining", self.combination.name, step=self.total_steps)
            return self.combine()
        except BaseException as exc:  # noqa: BLE001 - every way a run can end is recorded
            return self.fail(exc)
        finally:
            self.record.close()

    def open(self, project_id: int | None, project_file, resumed: bool) -> None:
        record = self.record
        if resumed:
            if self.store is not None:
                self.store.set_status(record.run_id, "running")
            record.status("resumed", ", ".join(f"{name}: {s['status']}" for name, s in self.stages.items()))
            return
        record.start(project_id=project_id, project_file=project_file)
        if self.store is not None:
            self.project_id = self.store.run(record.run_id)["project_id"]
        self.save_stages()
        record.status("running", f"{self.total_steps} steps in {len(self.training)} trainings, then "
                                 f"{self.combination.name}")

    def train_stage(self, stage: TrainWith, prepared: Prepared | None) -> RunResult:
        """One stage's run (or its earlier result, or its continuation)."""
        kept = self.stages.get(stage.name, {})
        steps = self.steps[stage.name]
        if kept.get("status") == "finished":
            self.steps_done += steps
            self.record.log("info", f"The {stage.name} adapter is already trained: {kept['adapter']}")
            return RunResult(kept["run_id"], "finished", Path(kept["adapter"]), steps, Path(kept["output_dir"]))
        if prepared is None:
            prepared = self.prepare_stage(stage)
        # Prepared before the run had a folder (the first stage is checked before anything is written).
        prepared.config.output.dir = str(self.record.output_dir / STAGES_DIR)
        self.record.status("running", f"training the {stage.name} ({stage.method} on data role {stage.data})",
                           step=self.steps_done)
        events = _StageEvents(self, stage)
        run = TrainingRun(prepared, store=self.store, listener=events, control=self.control,
                          evaluate_fn=self.evaluate_fn if stage.evaluate else None)
        result = run.run(project_id=self.project_id)
        self.steps_done += steps
        self.stages[stage.name] = {
            "run_id": result.run_id, "status": result.status, "steps": result.steps,
            "output_dir": str(result.output_dir) if result.output_dir else None,
            "adapter": str(result.adapter_dir) if result.adapter_dir else None, "error": result.error,
            **({"after": events.after} if events.after else {})}
        self.save_stages()
        return result

    def stage_started(self, stage: TrainWith, run_id: str) -> None:
        """Note a stage's run as soon as it exists, so that a killed run resumes from its checkpoints."""
        if run_id and self.stages.get(stage.name, {}).get("run_id") != run_id:
            self.stages[stage.name] = {"run_id": run_id, "status": "running",
                                       "output_dir": str(self.record.output_dir / STAGES_DIR / run_id)}
            self.save_stages()

    def combine(self) -> RunResult:
        """The Combine stage into <run>/adapter; then the evaluation after training."""
        record = self.record
        adapters = {name: Path(self.stages[name]["adapter"]) for name in self.combination.inputs}
        out = record.output_dir / ADAPTER
        try:
            adapter = self.method.combine(adapters, out)
        except OSError as exc:
            raise SaveError("the combined adapter", out, exc) from exc
        record.log("info", f"Adapter saved to {adapter} ({self.combination.name})")
        if self.store is not None:
            self.store.add_artifact(record.run_id, "adapter", adapter)
        status = "finished"
        if wanted(self.config, self.evaluate_fn, "after"):
            try:
                self.evaluate_after(adapter)
            except Cancelled:
                status = "stopped"
                record.log("warning", f"The evaluation after training was cut short: the adapter is saved in "
                                      f"{adapter}, and the run has no after-training numbers.")
        return record.finished(status, adapter, self.total_steps)

    def evaluate_after(self, adapter: Path) -> None:
        config = self.config
        self.record.status("loading", "the base model with the combined adapter", step=self.total_steps)
        # The base the stages trained on (quantized, when the project says so); the combined adapter
        # is plain LoRA and loads on the unquantized base as well.
        loaded = load_model(config.model_source(), dtype=config.model.dtype, device=config.model.device,
                            trust_remote_code=config.model.trust_remote_code, allow_network=config.model.allow_network,
                            quantization=config.model.quantization)
        model = load_adapter(loaded.model, adapter)
        result = evaluate(self.evaluate_fn, self.record, self.control, phase="after", model=model,
                          tokenizer=loaded.tokenizer)
        aggregates = getattr(result, "aggregates", result) or {}
        for stage in self.training:
            alone = self.stages.get(stage.name, {}).get("after")
            if stage.evaluate and alone and self.method.stage_metrics:
                self.record.log("info", comparison_table(self.method.title, stage.name, self.method.stage_metrics,
                                                         self.before or {}, alone, aggregates))

    def end_early(self, stage: TrainWith, result: RunResult) -> RunResult:
        """A stage ended stopped, cancelled or failed: so does the run, saying which stage."""
        record = self.record
        where = f"while training the {stage.name}"
        if result.status == "stopped":
            record.log("warning", f"Stopped {where}; no {self.combination.name} was made. The {stage.name}'s "
                                  f"adapter so far is {result.adapter_dir}; resume the run to go on.")
            return record.finished("stopped", result.adapter_dir, self.steps_done)
        message = f"{result.status.capitalize()} {where}: {result.error or result.status}"
        if result.status == "cancelled":
            fix = "Resume the run (the finished stages are kept), or start it again."
            return record.cancelled(self.steps_done, message, fix)
        return record.failed(self.steps_done, message,
                             f"See the {stage.name} stage's log above; after fixing it, resume the run.")

    def fail(self, exc: BaseException) -> RunResult:
        if not self.record.run_id:
            raise exc
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            if self.store is not None:
                self.store.set_status(self.record.run_id, "interrupted", error="Interrupted")
            raise exc
        if isinstance(exc, Cancelled):  # loading the model for the evaluation after training
            return self.record.cancelled(self.steps_done, "Cancelled before the combined adapter was evaluated",
                                         "Resume the run to evaluate it.")
        message, fix, trace = describe_failure(exc, step=self.steps_done, last_checkpoint=None,
                                               device=self.config.model.device)
        return self.record.failed(self.steps_done, message, fix, trace)

    # ---- records and events -----------------------------------------------------------------------

    def save_stages(self) -> None:
        record = {"run_id": self.record.run_id, "method": self.method.name, "params": self.method.params,
                  "before": self.before, "stages": self.stages}
        path = self.record.output_dir / STAGES_FILE
        partial = path.with_suffix(".partial")
        try:
            partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise SaveError(f"the record of the stages ({STAGES_FILE})", path, exc) from exc

    def record_before(self, aggregates: dict[str, float]) -> None:
        """The first stage's evaluation before training is the base model's: the run's own "before"."""
        self.before = aggregates
        self.record.emit(EvaluationEvent(self.record.run_id, "before", self.config.evaluation.suite, aggregates))
        if self.store is not None:
            self.store.add_evaluation(self.record.run_id, "before", self.config.evaluation.suite, aggregates)
        self.save_stages()


class _StageEvents:
    """A stage's events as the run's: its id, steps after the earlier stages, loss terms named after
    the stage; its ending becomes a log line (the run ends once, at the end)."""

    def __init__(self, run: StagedRun, stage: TrainWith):
        self.run, self.stage = run, stage
        self.after: dict[str, float] | None = None

    def __call__(self, event: Event) -> None:
        run, name = self.run, self.stage.name
        run.stage_started(self.stage, event.run_id)
        record = run.record
        if isinstance(event, StepEvent):
            losses = {("loss/total" if key == "loss/total" else f"loss/{name}"): value
                      for key, value in event.losses.items()}
            record.emit(dataclasses.replace(event, run_id=record.run_id, step=run.steps_done + event.step,
                                            total_steps=run.total_steps, losses=losses))
        elif isinstance(event, StatusEvent):
            if event.status not in ("running", "resumed"):
                record.emit(StatusEvent(record.run_id, event.status, f"{name}: {event.message}".rstrip(": "),
                                        run.steps_done + event.step))
        elif isinstance(event, LogEvent):
            record.emit(LogEvent(record.run_id, event.level, f"{name}: {event.message}"))
        elif isinstance(event, EvaluationEvent):
            if event.phase == "before" and run.before is None:
                run.record_before(event.aggregates)
            elif event.phase == "after":
                self.after = event.aggregates
                summary = ", ".join(f"{label} {event.aggregates[key]:.4g}" for key, label in run.method.stage_metrics
                                    if key in event.aggregates)
                record.log("info", f"The {name} alone: {summary}")
        elif isinstance(event, FinishedEvent):
            record.log("info", f"The {name} adapter ({event.status}, {event.steps} steps): {event.adapter_dir}")
        elif isinstance(event, FailedEvent):
            text = f"The {name} training {event.status}: {event.message}"
            record.log("error", text + (f"\n{event.traceback.rstrip()}" if event.traceback else ""))
        else:  # evaluation progress and anything new: the run's own, as it is
            record.emit(dataclasses.replace(event, run_id=record.run_id))
