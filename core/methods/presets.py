"""Presets for a method: the paper's recipe, the demo project's, and a conservative one.

A preset is a whole recipe: method parameters, LoRA, optimizer, schedule and training, and the
data roles with their templates and the evaluation that measures them (from the project the
preset comes from). The model and the output folder stay. A caller that must keep the user's
own data asks for ``keep_data``.

- "paper": the paper's values. Where the paper's recipe ships as a project (projects/elm.toml,
  ext_sub.toml, icu.toml, sku.toml: each has a separate *_demo.toml), that project; for the
  baselines, the values in ``PAPER`` (each with its source) on top of the demo project, which
  gives the data; for a method with neither, every hyperparameter at its declared default.
- "demo": the settings of projects/<method>_demo.toml (or projects/<method>.toml when that is
  the demo project), which run on the built-in demo in minutes.
- "conservative": the demo recipe with half the learning rate and half the training length, for
  a first run that changes the model less.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.paths import projects_dir
from unlearn_studio.core.project.config import DEMO_PREFIX, RunConfig

PRESETS = {"paper": "Paper's recipe", "demo": "Demo settings", "conservative": "Conservative"}
CONSERVATIVE_FACTOR = 0.5
SETTINGS = ("lora", "optimizer", "schedule", "training")  # what a preset sets besides the method's parameters


@dataclass(frozen=True)
class PaperValues:
    """A baseline's published training recipe (the method's own parameters are in ``params``)."""

    source: str
    lr: float
    batch_size: int
    grad_accum: int = 1
    max_steps: int | None = None
    epochs: float | None = None
    weight_decay: float = 0.01
    schedule: str = "linear"
    params: dict[str, Any] = field(default_factory=dict)


# TOFU's unlearning runs (arXiv 2401.06121, config/forget.yaml of locuslab/tofu): AdamW lr 1e-5,
# weight decay 0.01, 5 epochs of batch 16 with 4 accumulated steps.
_TOFU = dict(lr=1e-5, batch_size=16, grad_accum=4, epochs=5.0, weight_decay=0.01)
PAPER = {
    "grad_ascent": PaperValues("TOFU (arXiv 2401.06121), its forget.yaml: AdamW lr 1e-5, weight decay 0.01, "
                               "5 epochs, batch 16 × 4 accumulated", **_TOFU),
    "grad_diff": PaperValues("TOFU (arXiv 2401.06121), its forget.yaml: AdamW lr 1e-5, weight decay 0.01, "
                             "5 epochs, batch 16 × 4 accumulated; equal weights", **_TOFU, params={"retain_weight": 1.0}),
    "npo": PaperValues("NPO (arXiv 2404.05868) on TOFU, its config/forget.yaml: AdamW lr 1e-5, weight decay 0.01, "
                       "10 epochs, β 0.1, 32 examples a step (4 × 4 accumulated on 2 GPUs; here 4 × 8 on one)",
                       lr=1e-5, batch_size=4, grad_accum=8, epochs=10.0, params={"beta": 0.1, "retain_weight": 1.0}),
    "rmu": PaperValues("WMDP (arXiv 2403.03218), its Zephyr-7B run: AdamW lr 5e-5, 150 batches of 4, retain weight "
                       "α 1200 (their c = 6.5 is an absolute norm; the steering scale here is relative, ours)",
                       lr=5e-5, batch_size=4, max_steps=150, weight_decay=0.0, schedule="constant",
                       params={"alpha": 1200.0, "layer": -1}),
}


@dataclass(frozen=True)
class PresetResult:
    config: RunConfig
    note: str  # where the values came from, for the user
    data_from: Path | None = None  # the project the data roles came from (None: they were kept)


def _project(name: str) -> Path | None:
    path = projects_dir() / name
    return path if path.is_file() else None


def demo_project_for(method: str) -> Path | None:
    """The ready demo project for ``method``, if one ships."""
    return _project(f"{method}_demo.toml") or (_project(f"{method}.toml") if method not in _paper_projects() else None)


def paper_project_for(method: str) -> Path | None:
    """The project with the paper's recipe for ``method``, if one ships (beside a separate demo)."""
    return _project(f"{method}.toml") if method in _paper_projects() else None


def _paper_projects() -> set[str]:
    """Methods whose <method>.toml is the paper's recipe: they ship a separate <method>_demo.toml."""
    return {p.name.removesuffix("_demo.toml") for p in projects_dir().glob("*_demo.toml")
            if (projects_dir() / p.name.replace("_demo.toml", ".toml")).is_file()}


def declared_params(method: str) -> dict:
    # The registry imports torch (the methods' base): the wizard reads presets before it has loaded.
    from unlearn_studio.core.methods.registry import get_method

    return {h.name: h.default for h in get_method(method).hyperparameters}


def _portable(path: str, source: RunConfig) -> str:
    """A data path of ``source`` that names the same file from any project: demo paths as they are."""
    return path if path.startswith(DEMO_PREFIX) else str(source.resolve_path(path))


def _take(out: RunConfig, source: RunConfig, keep_data: bool) -> None:
    out.method.params = {**out.method.params, **source.method.params}
    for name in SETTINGS:
        setattr(out, name, copy.deepcopy(getattr(source, name)))
    if not keep_data:
        out.data = copy.deepcopy(source.data)
        out.evaluation = copy.deepcopy(source.evaluation)
        for item in (*out.data.values(), *out.evaluation.sets.values()):
            item.path = _portable(item.path, source)


def _paper(out: RunConfig, method: str, keep_data: bool) -> tuple[str, Path | None]:
    project = paper_project_for(method)
    if project is not None:
        _take(out, RunConfig.load(project), keep_data)
        return f"The paper's recipe, as {project.name} holds it", project
    values, demo = PAPER.get(method), demo_project_for(method)
    if values is None:
        return "Every hyperparameter at the default its method declares (no paper recipe ships for it)", None
    if demo is not None:
        _take(out, RunConfig.load(demo), keep_data)
    out.method.params.update(values.params)
    o, t = out.optimizer, out.training
    o.name, o.lr, o.weight_decay = "adamw", values.lr, values.weight_decay
    out.schedule.name = values.schedule
    t.batch_size, t.grad_accum, t.max_steps, t.epochs = values.batch_size, values.grad_accum, values.max_steps, values.epochs
    return f"The paper's recipe: {values.source}" + (f"; LoRA and data from {demo.name}" if demo else ""), demo


def apply_preset(config: RunConfig, method: str, preset: str, *, keep_data: bool = False) -> PresetResult:
    """A copy of ``config`` with ``method`` and the preset's recipe; ``keep_data`` keeps its data
    roles, templates and evaluation."""
    if preset not in PRESETS:
        raise UserError(f"Unknown preset '{preset}'", f"Use one of: {', '.join(PRESETS)}.")
    out = copy.deepcopy(config)
    out.method.name = method
    out.method.params = declared_params(method)
    if preset == "paper":
        note, source = _paper(out, method, keep_data)
    else:
        source = demo_project_for(method) or paper_project_for(method)
        if source is not None:
            _take(out, RunConfig.load(source), keep_data)
            note = f"Settings of {source.name}"
        else:
            note = "No demo project ships for this method, so the defaults its method declares"
        if preset == "conservative":
            out.optimizer.lr *= CONSERVATIVE_FACTOR
            t = out.training
            if t.max_steps is not None:
                t.max_steps = max(1, round(t.max_steps * CONSERVATIVE_FACTOR))
            else:
                t.epochs *= CONSERVATIVE_FACTOR
            note += ", with half the learning rate and half the training length"
    data_from = None if keep_data or source is None else source
    if data_from is not None and out.data != config.data:
        note += f"; data roles and templates from {source.name}"
    return PresetResult(out, note + ".", data_from)


def _settings(config: RunConfig) -> tuple:
    params = {**declared_params(config.method.name), **config.method.params}
    return (config.method.name, params, *(getattr(config, name) for name in SETTINGS))


def matching_preset(config: RunConfig) -> str | None:
    """The preset whose settings ``config`` has (its data aside), or None: the settings are custom."""
    mine = _settings(config)
    for preset in PRESETS:
        if _settings(apply_preset(config, config.method.name, preset, keep_data=True).config) == mine:
            return preset
    return None


def _data(config: RunConfig) -> dict:
    return {role: (config.resolve_path(s.path), s.format, s.columns, s.template, s.max_rows)
            for role, s in config.data.items()}


def shipped_data(config: RunConfig) -> bool:
    """Whether ``config``'s data roles are those of a project that ships with the app (so a person
    did not choose them, and a preset may bring its own without asking)."""
    mine = _data(config)
    return not mine or any(_data(RunConfig.load(path)) == mine for path in projects_dir().glob("*.toml"))
