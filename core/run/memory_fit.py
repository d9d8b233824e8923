"""When a run will not fit: which memory saver makes it fit, each with its estimated figure.

The savers, one at a time: gradient checkpointing, bf16 (or fp16) weights on a GPU that runs fp32
ones (autocast alone keeps the activations' size: the residual stream stays fp32), a 4-bit or
8-bit base (where bitsandbytes runs on the device), and a smaller batch with more accumulation
(the same batch per optimizer step). When none fits alone, the combinations of the
first three. Every option is a set of project settings, so the app and the CLI can say exactly
what to change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from unlearn_studio.core.model.memory_savers import quantization_problem
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.memory_estimate import HEADROOM, MemoryEstimate, estimate_memory, format_bytes
from unlearn_studio.core.run.precision import device_default


@dataclass(frozen=True)
class FitOption:
    """Settings to change (dotted key -> value) and the estimate with them."""

    settings: dict[str, Any]
    estimate: MemoryEstimate

    def describe(self) -> str:
        changes = " and ".join(f"{key} = {_toml(value)}" for key, value in self.settings.items())
        return f"{changes} (about {format_bytes(self.estimate.total)})"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _with(config: RunConfig, settings: dict[str, Any]) -> RunConfig:
    changed = copy.deepcopy(config)
    for key, value in settings.items():
        table, name = key.split(".")
        setattr(getattr(changed, table), name, value)
    return changed


def savers(config: RunConfig, estimate: MemoryEstimate) -> list[dict[str, Any]]:
    """The single memory savers this run does not use yet and its device can use."""
    found: list[dict[str, Any]] = []
    if not config.training.gradient_checkpointing:
        found.append({"training.gradient_checkpointing": True})
    half = device_default(estimate.device)  # bf16, fp16 on an older GPU; "no" off the GPU
    if estimate.dtype == "float32" and half != "no":
        found.append({"model.dtype": half})
    if config.model.quantization == "none":
        found += [{"model.quantization": kind} for kind in ("nf4", "int8")
                  if quantization_problem(kind, estimate.device) is None]
    return found


def _smaller_batch(config: RunConfig, free: int, built) -> FitOption | None:
    """The largest smaller batch that fits, with the accumulation that keeps the step's batch."""
    t = config.training
    batch = t.batch_size // 2
    while batch >= 1:
        if t.batch_size % batch == 0:
            settings = {"training.batch_size": batch, "training.grad_accum": t.grad_accum * t.batch_size // batch}
            estimate = estimate_memory(_with(config, settings), built=built)
            if estimate.total * HEADROOM <= free:
                return FitOption(settings, estimate)
        batch //= 2
    return None


def ways_to_fit(config: RunConfig, estimate: MemoryEstimate, free: int, *, built=None) -> list[FitOption]:
    """Options that bring the estimate (with headroom) under ``free`` bytes: every single saver that
    does, and the smaller batch; when no single saver does, the smallest combination that does."""
    singles = savers(config, estimate)
    fits: list[FitOption] = []
    for settings in singles:
        option = FitOption(settings, estimate_memory(_with(config, settings), built=built))
        if option.estimate.total * HEADROOM <= free:
            fits.append(option)
    if not fits:
        for size in range(2, len(singles) + 1):
            for group in combinations(singles, size):
                if sum("model.quantization" in settings for settings in group) > 1:
                    continue  # one quantization at a time
                settings = {key: value for part in group for key, value in part.items()}
                option = FitOption(settings, estimate_memory(_with(config, settings), built=built))
                if option.estimate.total * HEADROOM <= free:
                    fits.append(option)
            if fits:
                break
    smaller = _smaller_batch(config, free, built)
    if smaller is not None:
        fits.append(smaller)
    return sorted(fits, key=lambda option: (len(option.settings), option.estimate.total))


def smallest(config: RunConfig, estimate: MemoryEstimate, *, built=None) -> FitOption | None:
    """Every saver the device can use at once, and batch 1: the least this run can need."""
    settings = {key: value for part in savers(config, estimate) for key, value in part.items()
                if not (key == "model.quantization" and value == "int8")}
    if config.training.batch_size > 1:
        settings["training.batch_size"] = 1
    if not settings:
        return None
    return FitOption(settings, estimate_memory(_with(config, settings), built=built))
