"""Resuming a run from a checkpoint: first the check that the project still matches it (before
anything is written), then the restore of everything that feeds the next step.

A checkpoint keeps the configuration it was trained under and digests of its data files and
model folder. A project that differs in anything that shaped the trained weights, the data order
or the optimizer's state is refused, naming the keys, and the run is left as it was. A few
settings may change on resume (``MAY_CHANGE``): the learning rate and schedule, the step budget,
gradient clipping, intervals, the evaluation and the device; they take effect from the next
step and the run's log says which changed. Everything else is restored exactly, so that a
resumed run trains bit for bit as an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import get_scheduler

from unlearn_studio.core.cache import content_digest
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.checkpoint import Checkpoint, restore_rng_state
from unlearn_studio.core.run.record import CONFIG_FILE

# Settings that may differ between the checkpoint and the project, and what a change does.
MAY_CHANGE = {
    "name": "", "description": "",
    "optimizer.lr": "schedule", "optimizer.weight_decay": "optimizer", "optimizer.betas": "optimizer",
    "schedule.name": "schedule", "schedule.warmup_steps": "schedule",
    "training.max_steps": "schedule", "training.epochs": "schedule", "training.max_grad_norm": "",
    "training.checkpoint_every": "", "training.keep_checkpoints": "", "training.log_every": "",
    "evaluation.suite": "", "evaluation.before": "", "evaluation.after": "",
    "output.dir": "", "model.device": "",
    # How the steps are computed and recorded, not what they compute.
    "training.mixed_precision": "", "training.gradient_checkpointing": "", "training.threads": "",
    "tracking.tensorboard": "", "tracking.wandb": "", "tracking.mlflow": "",
}
MAY_CHANGE_TEXT = ("the learning rate, weight decay and betas (optimizer.lr, weight_decay, betas), the schedule, "
                   "training.max_steps or epochs, max_grad_norm, the checkpoint and log intervals, the evaluation, "
                   "model.device, mixed precision, gradient checkpointing, threads and tracking")
# LoRA weights beyond this size only come from a training that diverged (LoRA starts near 0 and
# Adam moves a weight by about the learning rate per step); a checkpoint holding them is not good.
WEIGHT_LIMIT = 1e4


# ---- what a checkpoint records about its inputs ---------------------------------------------------


def input_digests(config: RunConfig, roles: list[str]) -> dict[str, str | None]:
    """Content digests of the run's data files and model folder (None: a hub model, not a folder).
    ``roles`` are the run's data keys: a role, or a further source of one ("retain.persons")."""
    sources = {key: source for role in dict.fromkeys(key.split(".", 1)[0] for key in roles)
               for key, source in config.data[role].sources(role).items()}
    # Keyed as the project file names them: data.retain, data.retain.also.persons.
    digests: dict[str, str | None] = {
        "data." + key.replace(".", ".also.", 1): content_digest(config.resolve_path(source.path))
        for key, source in sources.items()}
    model = Path(config.resolve_model_path())
    digests["model"] = content_digest(model) if model.is_dir() else None
    return digests


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "columns":
            out.update(_flat(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (old, new) for every setting that differs between two ``RunConfig.to_dict()``s."""
    before, after = _flat(old), _flat(new)
    return {key: (before.get(key), after.get(key)) for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)}


def _checkpoint_config(checkpoint: Checkpoint) -> dict[str, Any]:
    """The configuration the checkpoint was trained under: its own record, or (checkpoints written
    before they kept one) the run folder's config.toml."""
    if "config" in checkpoint.state:
        kept = checkpoint.state["config"]
        try:  # settings added since the checkpoint was written take their defaults, as its run had them
            return RunConfig.from_dict(kept).to_dict()
        except UserError:
            return kept
    path = checkpoint.run_dir / CONFIG_FILE
    try:
        return RunConfig.from_toml(path.read_text(encoding="utf-8"), source=str(path)).to_dict()
    except (OSError, tomllib.TOMLDecodeError, UserError) as exc:
        raise UserError(f"The configuration of the run in {checkpoint.run_dir} cannot be read ({exc})",
                        "Resume from a run folder the app wrote, with its config.toml.") from exc


def _shown(value: Any) -> str:
    return "(not set)" if value is None else json.dumps(value)


# ---- the plan: checked before anything is written -------------------------------------------------


@dataclass
class ResumePlan:
    """A checkpoint the project may resume from, and the settings that change on resume."""

    checkpoint: Checkpoint
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # the adapter's, read and checked

    @property
    def new_schedule(self) -> bool:
        return any(MAY_CHANGE[key] == "schedule" for key in self.changed)

    def describe_changes(self) -> str:
        """"optimizer.lr 10000000000.0 -> 0.0001, ..." for the run's log ("" when nothing changed)."""
        return ", ".join(f"{key} {_shown(old)} -> {_shown(new)}" for key, (old, new) in self.changed.items()
                         if MAY_CHANGE[key])


def plan_resume(config: RunConfig, checkpoint: Checkpoint, digests: dict[str, str | None]) -> ResumePlan:
    """The plan, or a UserError naming every key that may not change and does (nothing is touched)."""
    changes = config_changes(_checkpoint_config(checkpoint), config.to_dict())
    kept_digests = checkpoint.state.get("inputs", {})
    for key, digest in digests.items():
        if key in kept_digests and kept_digests[key] != digest and f"{key}.path" not in changes:
            changes[f"{key} (the contents)"] = ("the file the run was trained on", "a different file")
    refused = {key: change for key, change in changes.items() if key not in MAY_CHANGE}
    if refused:
        listing = "; ".join(f"{key}: {_shown(old)} then, {_shown(new)} now" if not key.endswith("(the contents)")
                            else f"{key} changed" for key, (old, new) in refused.items())
        raise UserError(f"The project no longer matches the checkpoint {checkpoint.path}: {listing}",
                        "Put these settings back as they were when the run was trained, or start a new run. On "
                        f"resume only these may change: {MAY_CHANGE_TEXT}.")
    return ResumePlan(checkpoint, changes)


def check_checkpoint_weights(plan: ResumePlan, model) -> None:
    """Read the checkpoint's LoRA weights into ``plan.weights`` (before the run starts), or a
    UserError if they are not good (not finite, or beyond any training that did not diverge) or
    do not fit ``model``'s adapter. They are loaded into the model by ``restore_training``."""
    checkpoint = plan.checkpoint
    fix = "Resume with the project file the run was started with (the same lora settings and model)."
    weights = load_file(checkpoint.adapter_dir / "adapter_model.safetensors")
    for name, value in weights.items():
        peak = float(value.float().abs().max()) if value.numel() else 0.0
        if not math.isfinite(peak) or peak > WEIGHT_LIMIT:
            raise UserError(f"The checkpoint {checkpoint.path} is not good: its adapter weight {name} reaches "
                            f"{peak:.4g}, so the training had diverged before it was written",
                            "Resume from an earlier checkpoint of the run, or start it again with a lower "
                            "learning rate.")
    expected = {key: tuple(value.shape) for key, value in get_peft_model_state_dict(model).items()}
    found = {key: tuple(value.shape) for key, value in weights.items()}
    if expected.keys() != found.keys():
        example = min(expected.keys() ^ found.keys())
        raise UserError(f"The checkpoint {checkpoint.path} and this project's LoRA adapter have different "
                        f"modules (e.g. {example})", fix)
    wrong = [key for key in expected if expected[key] != found[key]]
    if wrong:
        raise UserError(f"The checkpoint {checkpoint.path} does not fit this project's LoRA adapter: "
                        f"{wrong[0]} is {found[wrong[0]]} there and {expected[wrong[0]]} here", fix)
    plan.weights = weights


# ---- the restore: once the run has started -------------------------------------------------------


def restore_progress(plan: ResumePlan, config: RunConfig, *, model, optimizer, scheduler, streams: dict,
                     total_steps: int, state: dict[str, Any]):
    """Adapter weights, optimizer, scheduler and data streams as the checkpoint left them, with the
    optimizer and schedule settings of ``config`` where they changed. Returns the scheduler to go
    on with (a new one when the schedule changed). The method's state and the RNGs come last
    (``restore_method_and_rngs``), after the method has prepared itself as at the run's start."""
    checkpoint = plan.checkpoint
    set_peft_model_state_dict(model, plan.weights)
    optimizer.load_state_dict(state["optimizer"])
    for group in optimizer.param_groups:
        group["weight_decay"] = config.optimizer.weight_decay
        if "betas" in group:
            group["betas"] = tuple(config.optimizer.betas)
    if plan.new_schedule:
        scheduler = schedule_at(optimizer, config, total_steps, checkpoint.step)
    else:
        scheduler.load_state_dict(state["scheduler"])
    for role, stream in streams.items():
        if role not in checkpoint.state["streams"]:
            raise UserError(f"The checkpoint {checkpoint.path} has no position for the data role {role}",
                            "Resume with the project file the run was started with.")
        stream.load_state(checkpoint.state["streams"][role])
    return scheduler


def restore_method_and_rngs(plan: ResumePlan, method, state: dict[str, Any]) -> None:
    method.load_state_dict(plan.checkpoint.state.get("method", {}))
    restore_rng_state(state["rng"])


def schedule_at(optimizer: torch.optim.Optimizer, config: RunConfig, total_steps: int, step: int):
    """A scheduler of ``config``'s schedule and learning rate, positioned after ``step`` steps, and
    the optimizer's learning rate set to its value there."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = config.optimizer.lr
    scheduler = get_scheduler(config.schedule.name, optimizer, num_warmup_steps=config.schedule.warmup_steps,
                              num_training_steps=total_steps)
    rates = [base * rate(step) for base, rate in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
    state = scheduler.state_dict()
    state.update(last_epoch=step, _last_lr=rates)
    scheduler.load_state_dict(state)
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    return scheduler
