"""Ext-Sub: train an expert and an anti-expert LoRA, then subtract the anti-expert's deficiency.

Hu et al., "Separate the Wheat from the Chaff: Model Deficiency Unlearning via Parameter-Efficient
Module Operation", AAAI 2024, arXiv 2308.08090; code github.com/HITsz-TMG/Ext-Sub (ext_sub.py).

A recipe in three stages, one project: (1) the expert, plain LoRA SFT (core/methods/sft.py) on
the "expert" data, (2) the anti-expert, the same SFT on the "anti-expert" data, (3) Ext-Sub of
the two adapters (core/adapters.py). Stages 1 and 2 are ordinary recorded runs of method "sft"
in ``<run>/stages/``, so their curves, checkpoints and evaluations are kept, and the run itself
holds the combined adapter in ``<run>/adapter`` and ``stages.json`` (what each stage was and
measured). The run's events carry its own id: the two trainings appear as one curve of
``training.max_steps``-sized parts with terms "expert" and "anti-expert", and the expert's own
evaluation is logged beside the result.

Deviations from the authors' code, on purpose:
- The result is stored as an exact LoRA of rank r_expert + r_anti (A' = [A+; A-]) instead of a
  full-rank one with A = I, which needs square modules and ~4 GB for a 7B model.
- Each adapter's scaling is folded into its B before the arithmetic, so adapters with different
  ranks or alphas combine correctly (their code assumes equal ones and asserts equal ranks).
- Zero rows and opposite rows (no shared direction) get plain subtraction instead of NaN.
- Adapters are read and written as safetensors; "negation" (−λW) is offered beside "subtraction"
  and "addition".
- The training recipe is this app's SFT: answer tokens + EOS with the "user-assistant" template
  (the paper's "<|user|>\\n…\\n<|assistant|>\\n"), AdamW and a linear schedule instead of DeepSpeed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, ClassVar

import torch

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import (
    EvaluationEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    StatusEvent,
    StepEvent,
)
from unlearn_studio.core.files import mark_as_own
from unlearn_studio.core.methods.base import (
    FORGET_PERSON_METRICS,
    FORGET_SECRET_METRICS,
    Batch,
    DataRoles,
    Hyperparameter,
    MethodContext,
    UnlearningMethod,
)
from unlearn_studio.core.methods.registry import register
from unlearn_studio.core.model.adapters import OPERATIONS
from unlearn_studio.core.project.config import MethodConfig, RunConfig

STAGES = ("expert", "anti-expert")  # data role of each training stage, in order
STAGES_FILE = "stages.json"
# Rows of the "the expert alone vs Ext-Sub" lines logged at the end.
COMPARED = (("truthfulness/accuracy", "truthfulness"), ("general/perplexity", "general perplexity"),
            ("retain/value_acc", "retain: value accuracy"), ("fluency/rep_4", "repetition (rep-4)"))


@register
class ExtSub(UnlearningMethod):
    name = "ext_sub"
    title = "Ext-Sub"
    summary = ("Train an expert and an anti-expert LoRA, then remove from the expert only what the "
               "anti-expert does not share with it.")
    paper = "Hu et al., Separate the Wheat from the Chaff (Ext-Sub), AAAI 2024, arXiv 2308.08090"
    roles = DataRoles(required=STAGES)
    terms = STAGES
    hyperparameters = (
        Hyperparameter("alpha", float, 1.0, "strength λ of the anti-expert's deficiency part that is removed",
                       "Ext-Sub paper (arXiv 2308.08090), §3 and its ext_sub.py: λ = 1", minimum=0.0),
        Hyperparameter("op", str, "ext-sub", "how the two adapters are combined",
                       "Ext-Sub paper: ext-sub; subtraction and addition are its baselines", choices=OPERATIONS),
    )
    # Ext-Sub removes a behaviour, not the forget set's facts: those rows should hold.
    expected_moves: ClassVar[dict[str, str]] = {
        "truthfulness/accuracy": "up", **dict.fromkeys(FORGET_PERSON_METRICS + FORGET_SECRET_METRICS, "hold")}

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> dict[str, torch.Tensor]:
        raise RuntimeError("Ext-Sub trains in stages (ExtSub.run_stages); it has no loss of its own")

    @classmethod
    def run_stages(cls, config: RunConfig, *, store=None, project_id: int | None = None, listener=None,
                   control=None, resume: str | os.PathLike | None = None, evaluate_fn=None):
        """Train the expert, then the anti-expert, combine them, evaluate; one RunResult."""
        return _Recipe(cls, config, store, listener, control, evaluate_fn).run(project_id, resume)


def stage_config(config: RunConfig, role: str, stages_dir: Path) -> RunConfig:
    """The SFT run of one stage: the stage's data as the "expert" role, the other (evaluation)
    roles kept, and its output in ``stages_dir``. Only the expert is evaluated (the comparison
    the recipe reports); the anti-expert's evaluation would cost as much and decide nothing."""
    derived = copy.deepcopy(config)
    derived.name = f"{config.name} [{role}]"
    derived.method = MethodConfig("sft", {})
    derived.data = {"expert": config.data[role],
                    **{r: source for r, source in config.data.items() if r not in STAGES}}
    derived.output.dir = str(stages_dir)
    if role != "expert":
        derived.evaluation.before = derived.evaluation.after = False
    return derived


class _Recipe:
    """One Ext-Sub run: its record, its stages and its events."""

    def __init__(self, cls, config: RunConfig, store, listener, control, evaluate_fn):
        from unlearn_studio.core.control import RunControl

        self.cls, self.config, self.store, self.listener = cls, config, store, listener
        self.control = control or RunControl()
        self.evaluate_fn = evaluate_fn
        self.run_id = ""
        self.output_dir: Path | None = None
        self.stages: dict[str, dict[str, Any]] = {}
        self.expert_after: dict[str, float] | None = None
        self.before: dict[str, float] | None = None
        self.steps_done = 0
        self.project_id: int | None = None

    # ---- checks before anything is written -----------------------------------------------------

    def check(self, resume) -> dict[str, int]:
        """Every input check a stage would do first; returns the optimizer steps of each stage."""
        from unlearn_studio.core.methods.sft import SFT
        from unlearn_studio.core.model.loading import describe_model_folder
        from unlearn_studio.core.run.data import load_roles
        from unlearn_studio.core.run.runner import _total_steps

        config = self.config
        config.validate()
        self.method = self.cls(config.method.params)
        self.cls.check_roles(set(config.data))
        if not config.lora.enabled:
            raise UserError("Ext-Sub trains two LoRA adapters, but lora.enabled is false",
                            "Set lora.enabled = true in the project file.")
        describe_model_folder(config.resolve_model_path(), dtype=config.model.dtype, device=config.model.device,
                              trust_remote_code=config.model.trust_remote_code,
                              allow_network=config.model.allow_network)
        data = load_roles(config, list(STAGES))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            raise UserError("The Ext-Sub recipe runs in one process, not under accelerate launch",
                            "Train the expert and the anti-expert as two \"sft\" projects with accelerate "
                            "launch, then combine them with `unlearn-studio extsub`.")
        if resume is not None:
            self.load_stages(Path(resume))
        return {role: _total_steps(stage_config(config, role, Path(".")), SFT, {"expert": data[role]}, world)[0]
                for role in STAGES}

    def load_stages(self, folder: Path) -> None:
        """Take up an earlier run of this recipe from its folder."""
        path = folder / STAGES_FILE
        if not path.is_file():
            raise UserError(f"{folder} is not the folder of an Ext-Sub run (it has no {STAGES_FILE})",
                            "Resume with the run's own folder (<output dir>/<run id>, which holds "
                            f"{STAGES_FILE}).")
        record = json.loads(path.read_text(encoding="utf-8"))
        self.run_id, self.output_dir = record["run_id"], folder.resolve()
        self.stages = record.get("stages", {})
        self.before = record.get("before")
        self.expert_after = self.stages.get("expert", {}).get("after")
        if self.store is not None:
            # A UserError when the run is not in this store; its stages join the same project.
            self.project_id = self.store.run(self.run_id)["project_id"]

    # ---- the run --------------------------------------------------------------------------------

    def run(self, project_id: int | None, resume):
        totals = self.check(resume)
        self.total_steps = sum(totals.values())
        self.start(project_id, resume is not None)
        try:
            for role in STAGES:
                result = self.train_stage(role, totals[role])
                if result.status != "finished":
                    return self.end_early(role, result)
            self.status("combining", f"{self.method.params['op']} of the two adapters")
            return self.combine()
        except BaseException as exc:  # noqa: BLE001 - every way a run can end is recorded
            return self.fail(exc)

    def start(self, project_id: int | None, resumed: bool) -> None:
        config = self.config
        if resumed:
            if self.store is not None:
                self.store.set_status(self.run_id, "running")
            self.status("resumed", ", ".join(f"{r}: {s['status']}" for r, s in self.stages.items()) or "")
            return
        root = config.resolve_path(config.output.dir)
        if self.store is not None:
            if project_id is None:
                from unlearn_studio.core.run.runner import _project_file

                project_id = self.store.ensure_project(config.name, _project_file(config))
            self.project_id = project_id
            self.run_id = self.store.start_run(project_id, config, root)
        else:
            self.run_id = uuid.uuid4().hex
        self.output_dir = root / self.run_id
        if self.store is not None:
            self.store.set_output_dir(self.run_id, self.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        mark_as_own(self.output_dir, "run", run_id=self.run_id)
        base = config.base_dir or Path.cwd()
        header = f"# The configuration of run {self.run_id}; relative paths are relative to {base}\n"
        (self.output_dir / "config.toml").write_text(header + config.to_toml(), encoding="utf-8")
        self.save_stages()
        self.status("running", f"{self.total_steps} steps in two trainings, then {self.method.params['op']}")

    def train_stage(self, role: str, steps: int):
        """One SFT run (or its earlier result, or its continuation)."""
        from unlearn_studio.core.run.runner import RunResult, execute

        record = self.stages.get(role, {})
        if record.get("status") == "finished":
            self.steps_done += steps
            if role == "expert":
                self.expert_after = record.get("after")
            self.log("info", f"The {role} adapter is already trained: {record['adapter']}")
            return RunResult(record["run_id"], "finished", Path(record["adapter"]), steps, Path(record["output_dir"]))
        stage_resume = record.get("output_dir") if _has_checkpoint(record.get("output_dir")) else None
        self.status("running", f"training the {role} (SFT on data role {role})")
        translate = _StageEvents(self, role, steps)
        result = execute(stage_config(self.config, role, self.output_dir / "stages"), store=self.store,
                         project_id=self.project_id, listener=translate, control=self.control,
                         resume=stage_resume, evaluate_fn=self.evaluate_fn)
        self.steps_done += steps
        self.stages[role] = {"run_id": result.run_id, "status": result.status, "steps": result.steps,
                             "output_dir": str(result.output_dir) if result.output_dir else None,
                             "adapter": str(result.adapter_dir) if result.adapter_dir else None,
                             "error": result.error, **({"after": translate.after} if translate.after else {})}
        self.save_stages()
        return result

    def stage_started(self, role: str, run_id: str) -> None:
        """Note a stage's run as soon as it exists, so that a killed run resumes from its checkpoints."""
        if self.stages.get(role, {}).get("run_id") != run_id:
            self.stages[role] = {"run_id": run_id, "status": "running",
                                 "output_dir": str(self.output_dir / "stages" / run_id)}
            self.save_stages()

    def combine(self):
        """Ext-Sub of the two adapters into <run>/adapter; then the after evaluation."""
        from unlearn_studio.core.model.adapters import combine_adapters
        from unlearn_studio.core.run.runner import RunResult

        params = self.method.params
        adapter = combine_adapters(self.stages["expert"]["adapter"], self.stages["anti-expert"]["adapter"],
                                   self.output_dir / "adapter", op=params["op"], alpha=params["alpha"],
                                   overwrite=True)  # the run's own adapter (written again on resume)
        self.log("info", f"Adapter saved to {adapter} ({params['op']}, alpha {params['alpha']:g})")
        if self.store is not None:
            self.store.add_artifact(self.run_id, "adapter", adapter)
        self.evaluate_after(adapter)
        if self.store is not None:
            self.store.set_status(self.run_id, "finished")
        self.emit(FinishedEvent(self.run_id, "finished", str(adapter), self.total_steps))
        return RunResult(self.run_id, "finished", adapter, self.total_steps, self.output_dir)

    def evaluate_after(self, adapter: Path) -> None:
        ev = self.config.evaluation
        if self.evaluate_fn is None or ev.suite == "none" or not ev.after:
            return
        from unlearn_studio.core.model.loading import load_adapter, load_model

        self.status("evaluating", "after")
        config = self.config
        loaded = load_model(config.resolve_model_path(), dtype=config.model.dtype, device=config.model.device,
                            trust_remote_code=config.model.trust_remote_code,
                            allow_network=config.model.allow_network)
        model = load_adapter(loaded.model, adapter)
        model.eval()
        result = self.evaluate_fn(model, loaded.tokenizer, "after", self.output_dir / "evaluation" / "after")
        self.record_evaluation("after", getattr(result, "aggregates", result),
                               getattr(result, "items_path", None))
        del model, loaded

    def record_evaluation(self, phase: str, aggregates: dict, items_path=None) -> None:
        if not aggregates:
            return
        aggregates = {key: float(value) for key, value in aggregates.items()}
        self.emit(EvaluationEvent(self.run_id, phase, self.config.evaluation.suite, aggregates))
        if self.store is not None:
            self.store.add_evaluation(self.run_id, phase, self.config.evaluation.suite, aggregates,
                                      str(items_path) if items_path else None)
        if phase == "after" and self.expert_after:
            self.log("info", expert_comparison(self.before or {}, self.expert_after, aggregates))

    def end_early(self, role: str, stage):
        """A stage ended stopped, cancelled or failed: so does the run, saying which stage."""
        from unlearn_studio.core.run.runner import RunResult

        where = f"while training the {role}"
        if stage.status == "stopped":
            message = (f"Stopped {where}; no Ext-Sub adapter was made. The {role}'s adapter so far is "
                       f"{stage.adapter_dir}; resume with --resume {self.output_dir}")
            self.log("warning", message)
            if self.store is not None:
                self.store.set_status(self.run_id, "stopped")
            self.emit(FinishedEvent(self.run_id, "stopped", str(stage.adapter_dir), self.steps_done))
            return RunResult(self.run_id, "stopped", stage.adapter_dir, self.steps_done, self.output_dir)
        status = "cancelled" if stage.status == "cancelled" else "failed"
        message = f"{status.capitalize()} {where}: {stage.error or stage.status}"
        fix = (f"Resume with --resume {self.output_dir} (the finished stages are kept), or start again."
               if status == "cancelled" else
               f"See the {role} stage's log above; after fixing it, resume with --resume {self.output_dir}.")
        if self.store is not None:
            self.store.set_status(self.run_id, status, error=f"{message}\nWhat to do: {fix}")
        self.emit(FailedEvent(self.run_id, status, message, fix))
        return RunResult(self.run_id, status, None, self.steps_done, self.output_dir, message)

    def fail(self, exc: BaseException):
        from unlearn_studio.core.run.runner import RunResult, explain_failure, failure_record

        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            if self.store is not None:
                self.store.set_status(self.run_id, "interrupted", error="Interrupted")
            raise exc
        message, fix, trace = explain_failure(exc)
        if self.store is not None:
            self.store.set_status(self.run_id, "failed", error=failure_record(message, fix, trace))
        self.emit(FailedEvent(self.run_id, "failed", message, fix, trace))
        return RunResult(self.run_id, "failed", None, self.steps_done, self.output_dir, message)

    # ---- records and events ---------------------------------------------------------------------

    def save_stages(self) -> None:
        params = self.method.params
        record = {"run_id": self.run_id, "operation": params["op"], "alpha": params["alpha"],
                  "before": self.before, "stages": self.stages}
        path = self.output_dir / STAGES_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def emit(self, event: Event) -> None:
        if self.listener is not None:
            self.listener(event)

    def status(self, status: str, message: str = "") -> None:
        self.emit(StatusEvent(self.run_id, status, message))

    def log(self, level: str, message: str) -> None:
        self.emit(LogEvent(self.run_id, level, message))


class _StageEvents:
    """A stage's events as the Ext-Sub run's: its id, steps after the earlier stages, loss terms
    named after the stage; its ending becomes a log line (the run ends once, at the end)."""

    def __init__(self, recipe: _Recipe, role: str, steps: int):
        self.recipe, self.role, self.steps = recipe, role, steps
        self.after: dict[str, float] | None = None

    def __call__(self, event: Event) -> None:
        recipe, role = self.recipe, self.role
        recipe.stage_started(role, event.run_id)
        if isinstance(event, StepEvent):
            losses = {("loss/total" if name == "loss/total" else f"loss/{role}"): value
                      for name, value in event.losses.items()}
            recipe.emit(dataclasses.replace(event, run_id=recipe.run_id, step=recipe.steps_done + event.step,
                                            total_steps=recipe.total_steps, losses=losses))
        elif isinstance(event, StatusEvent):
            if event.status not in ("running", "resumed"):
                recipe.emit(StatusEvent(recipe.run_id, event.status, f"{role}: {event.message}".rstrip(": ")))
        elif isinstance(event, LogEvent):
            recipe.emit(LogEvent(recipe.run_id, event.level, f"{role}: {event.message}"))
        elif isinstance(event, EvaluationEvent):
            if event.phase == "before" and recipe.before is None:
                recipe.before = event.aggregates  # the base model: the run's own "before"
                recipe.record_evaluation("before", event.aggregates)
                recipe.save_stages()
            elif event.phase == "after":
                self.after = event.aggregates
                if role == "expert":
                    recipe.expert_after = event.aggregates
                summary = ", ".join(f"{label} {event.aggregates[key]:.4g}" for key, label in COMPARED
                                    if key in event.aggregates)
                recipe.log("info", f"The {role} alone: {summary}")
        elif isinstance(event, FinishedEvent):
            recipe.log("info", f"The {role} adapter ({event.status}, {event.steps} steps): {event.adapter_dir}")
        elif isinstance(event, FailedEvent):
            text = f"The {role} training {event.status}: {event.message}"
            recipe.log("error", text + (f"\n{event.traceback.rstrip()}" if event.traceback else ""))


def _has_checkpoint(folder: str | None) -> bool:
    from unlearn_studio.core.run.checkpoint import find_checkpoint

    if not folder:
        return False
    try:
        find_checkpoint(folder)
    except UserError:
        return False
    return True


def expert_comparison(before: dict[str, float], expert: dict[str, float], combined: dict[str, float]) -> str:
    """A few lines: the base model, the expert alone and the combined adapter, side by side."""
    lines = [f"{'Ext-Sub against the expert alone':<26}  {'base':>8}  {'expert':>8}  {'Ext-Sub':>8}  change"]
    for key, label in COMPARED:
        if key in expert and key in combined:
            base = before.get(key, math.nan)
            change = f"{(combined[key] - expert[key]) / abs(expert[key]) * 100:+.1f}%" if expert[key] else ""
            lines.append(f"{label:<26}  {base:>8.4g}  {expert[key]:>8.4g}  {combined[key]:>8.4g}  {change}")
    return "\n".join(lines)
