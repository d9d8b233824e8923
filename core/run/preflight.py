"""Checks before a run starts: the config and method parameters, memory fit, free disk, and
options that do not go together. Each check is a line the app and the CLI can show."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.model.devices import resolve_device
from unlearn_studio.core.model.memory_savers import quantization_problem
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.memory_estimate import (
    FP32,
    HEADROOM,
    MemoryEstimate,
    available_memory,
    estimate_memory,
    format_bytes,
    meta_model,
)
from unlearn_studio.core.run.memory_fit import smallest, ways_to_fit

OK, WARNING, ERROR = "ok", "warning", "error"
MEMORY_TIGHT = 0.8  # share of free memory above which a fit is called tight


@dataclass(frozen=True)
class Check:
    level: str  # "ok" | "warning" | "error"
    title: str
    detail: str = ""


@dataclass
class Preflight:
    checks: list[Check] = field(default_factory=list)
    estimate: MemoryEstimate | None = None

    @property
    def ok(self) -> bool:
        """No check stops the run (warnings do not)."""
        return not any(c.level == ERROR for c in self.checks)


def preflight(config: RunConfig) -> Preflight:
    """Every check; problems are reported as checks, never raised."""
    result = Preflight()
    add = result.checks.append
    try:
        config.validate()
    except UserError as error:
        add(Check(ERROR, "The configuration is not valid", str(error)))
        return result
    add(_method_check(config))
    try:
        built = meta_model(config)
        result.estimate = estimate_memory(config, built=built)
    except UserError as error:
        add(Check(ERROR, "The model cannot be read", str(error)))
    if result.estimate is not None:
        add(_memory_check(config, result.estimate, built))
        add(_disk_check(config, result.estimate))
    result.checks.extend(_option_checks(config))
    return result


def _method_check(config: RunConfig) -> Check:
    try:
        cls = get_method(config.method.name)
        cls.check_params(config.method.params)
        cls.check_roles(set(config.data))
    except UserError as error:
        return Check(ERROR, "The method settings are not valid", str(error))
    if not config.lora.enabled:
        return Check(ERROR, f"{cls.title} trains a LoRA adapter, but LoRA is off", "Turn LoRA on.")
    return Check(OK, f"{cls.title}: parameters and data roles are complete")


def _memory_check(config: RunConfig, estimate: MemoryEstimate, built) -> Check:
    need = estimate.total * HEADROOM
    free = available_memory(estimate.device)
    what = f"needs {estimate.summary()}"
    if free is None:
        return Check(WARNING, f"The run {what}", f"Free memory on {estimate.device} is unknown.")
    detail = f"{format_bytes(free)} free on {estimate.device}; the estimate plus {HEADROOM - 1:.0%} headroom is {format_bytes(need)}."
    if need > free:
        return Check(ERROR, f"The run {what}: more than is free", f"{detail} {_how_to_fit(config, estimate, free, built)}")
    if need > MEMORY_TIGHT * free:
        return Check(WARNING, f"The run {what}: a tight fit", detail)
    return Check(OK, f"The run {what}: it fits", detail)


def _how_to_fit(config: RunConfig, estimate: MemoryEstimate, free: int, built) -> str:
    """Which memory savers make the run fit, each with its estimate; or the least it can need."""
    options = ways_to_fit(config, estimate, free, built=built)
    if options:
        return "It fits with " + "; or ".join(option.describe() for option in options) + "."
    least = smallest(config, estimate, built=built)
    floor = f" With {least.describe()} it still needs more." if least is not None else ""
    return f"No memory saver makes it fit here.{floor} Use a smaller model or a machine with more memory."


def _existing_folder(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk_check(config: RunConfig, estimate: MemoryEstimate) -> Check:
    t = config.training
    adapter = estimate.lora_parameters * FP32
    checkpoint = adapter + estimate.optimizer
    need = adapter + checkpoint * (t.keep_checkpoints + 1)  # one more while the newest is written
    folder = config.resolve_path(config.output.dir)
    free = shutil.disk_usage(_existing_folder(folder)).free
    detail = f"{format_bytes(free)} free at {folder}; adapter and {t.keep_checkpoints} checkpoints take about {format_bytes(need)}."
    if need > free:
        return Check(ERROR, "Not enough free disk for the adapter and checkpoints", detail)
    return Check(OK, "Free disk for the adapter and checkpoints", detail)


def _option_checks(config: RunConfig) -> list[Check]:
    checks = []
    try:
        device = resolve_device(config.model.device)
    except UserError as error:
        return [Check(ERROR, "The device is not available", str(error))]
    t = config.training
    problem = quantization_problem(config.model.quantization, device)
    if problem is not None:
        checks.append(Check(ERROR, "The quantized base cannot be loaded", problem))
    if device == "cpu" and t.mixed_precision == "fp16":
        checks.append(Check(ERROR, "fp16 mixed precision needs a GPU", "Set mixed precision to \"no\" or \"bf16\"."))
    if device == "cpu" and config.model.dtype == "fp16":
        checks.append(Check(WARNING, "fp16 weights on the CPU are slow and some operations lack fp16 kernels",
                            "Use fp32 or bf16 on the CPU."))
    if t.max_steps is not None and t.checkpoint_every > t.max_steps:
        checks.append(Check(OK, "No checkpoint before the end of the run",
                            f"A checkpoint is written every {t.checkpoint_every} steps; stop and save still writes one."))
    if not config.model.is_demo and not config.model.allow_network and not Path(config.resolve_model_path()).exists():
        checks.append(Check(ERROR, "The model folder does not exist and network use is off", config.model.path))
    return checks
