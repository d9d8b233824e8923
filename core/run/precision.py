"""The run's mixed precision: whether the forward and backward passes autocast to bf16 or fp16.

``training.mixed_precision``:
- "auto" (the default): the launcher's setting when ``accelerate launch`` gives one (its
  ``--mixed_precision`` or config file, which it hands to the processes as
  ``ACCELERATE_MIXED_PRECISION``); else bf16 on a CUDA GPU that has it, fp16 on an older CUDA GPU
  (with loss scaling), and none on the CPU and Apple GPUs (their bf16 kernels are slower than
  fp32 on most machines);
- "no", "bf16", "fp16": the project's, whatever the launcher says.

The LoRA weights, their gradients and the optimizer stay fp32 under autocast (PEFT keeps the
adapter in fp32); the run's log names the effective choice and where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from unlearn_studio.core.model.memory_savers import NAMES as QUANTIZATION_NAMES

LAUNCHER_VARIABLE = "ACCELERATE_MIXED_PRECISION"
CHOICES = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class PrecisionChoice:
    """What accelerate is given (``mixed_precision``) and why."""

    mixed_precision: str  # "no" | "bf16" | "fp16"
    reason: str

    def describe(self, weights: str, quantization: str = "none") -> str:
        """One line for the run's log, e.g. "Precision: base weights bfloat16, LoRA fp32, autocast bf16
        (chosen for the GPU)"."""
        quantized = f" (linear layers {QUANTIZATION_NAMES.get(quantization, quantization)})" if quantization != "none" else ""
        base = f"base weights {weights}{quantized}"
        autocast = "no autocast" if self.mixed_precision == "no" else f"autocast {self.mixed_precision}"
        return f"Precision: {base}, LoRA weights fp32, {autocast} ({self.reason})"


def device_default(device: str) -> str:
    """bf16 where a CUDA GPU has it, fp16 on an older CUDA GPU, else none."""
    if device != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def choose_precision(setting: str, device: str, environ: Mapping[str, str] = os.environ) -> PrecisionChoice:
    """The effective mixed precision of a run on ``device`` (the rules of the module docstring)."""
    if setting in CHOICES:
        launcher = environ.get(LAUNCHER_VARIABLE, "").strip().lower()
        overrides = f", over the launcher's {launcher}" if launcher in CHOICES and launcher != setting else ""
        return PrecisionChoice(setting, f"training.mixed_precision in the project{overrides}")
    if setting != "auto":
        raise ValueError(f"unknown mixed precision {setting!r}")
    launcher = environ.get(LAUNCHER_VARIABLE, "").strip().lower()
    if launcher in CHOICES:
        return PrecisionChoice(launcher, "the setting of accelerate launch")
    chosen = device_default(device)
    where = {"cuda": "the GPU", "cpu": "the CPU", "mps": "the Apple GPU"}.get(device, device)
    return PrecisionChoice(chosen, f"chosen for {where}")
