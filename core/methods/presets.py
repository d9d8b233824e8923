"""Setting presets for a method: the paper's defaults, the demo project's settings, a conservative set.

- "paper": every hyperparameter at its declared default (each says where it comes from); the
  other settings stay as they are.
- "demo": the settings of projects/<method>_demo.toml (or projects/<method>.toml): method
  parameters, LoRA, optimizer, schedule and training. Model, data and evaluation stay.
- "conservative": the demo settings (the paper's where there is no demo project) with half the
  learning rate and half the steps, for a first run that changes the model less.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.paths import projects_dir
from unlearn_studio.core.project.config import RunConfig

PRESETS = {
    "paper": "Paper defaults",
    "demo": "Demo",
    "conservative": "Conservative",
}
CONSERVATIVE_FACTOR = 0.5


@dataclass(frozen=True)
class PresetResult:
    config: RunConfig
    note: str  # where the values came from, for the user


def demo_project_for(method: str) -> Path | None:
    """The ready project file for ``method``, if one ships."""
    for name in (f"{method}_demo.toml", f"{method}.toml"):
        path = projects_dir() / name
        if path.is_file():
            return path
    return None


def paper_params(method: str) -> dict:
    from unlearn_studio.core.methods.registry import get_method

    return {h.name: h.default for h in get_method(method).hyperparameters}


def apply_preset(config: RunConfig, method: str, preset: str) -> PresetResult:
    """A copy of ``config`` with ``method`` and the preset's settings."""
    if preset not in PRESETS:
        raise UserError(f"Unknown preset '{preset}'", f"Use one of: {', '.join(PRESETS)}.")
    out = copy.deepcopy(config)
    out.method.name = method
    out.method.params = paper_params(method)
    if preset == "paper":
        return PresetResult(out, "Every hyperparameter at the default its method declares (see each one's source).")
    demo = demo_project_for(method)
    if demo is not None:
        source = RunConfig.load(demo)
        out.method.params = {**out.method.params, **source.method.params}
        out.lora = copy.deepcopy(source.lora)
        out.optimizer = copy.deepcopy(source.optimizer)
        out.schedule = copy.deepcopy(source.schedule)
        out.training = copy.deepcopy(source.training)
        note = f"Settings of {demo.name}"
    else:
        note = "No demo project ships for this method, so the paper defaults"
    if preset == "demo":
        return PresetResult(out, note + ".")
    out.optimizer.lr = out.optimizer.lr * CONSERVATIVE_FACTOR
    t = out.training
    if t.max_steps is not None:
        t.max_steps = max(1, round(t.max_steps * CONSERVATIVE_FACTOR))
    else:
        t.epochs = t.epochs * CONSERVATIVE_FACTOR
    return PresetResult(out, f"{note}, with half the learning rate and half the training length.")
