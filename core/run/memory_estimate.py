"""An estimate of the memory a run needs, from the model's structure alone (no weights loaded).

It is an estimate, and the app says so: base weights in their dtype + LoRA weights, their
gradients and optimizer states (fp32, as PEFT keeps adapters) + the activations that the training
forward passes keep for the backward pass (every data role the method trains on in a step adds
one forward pass) + the logits of one pass. Allocator overhead, CUDA context and framework
buffers come on top; ``HEADROOM`` covers them when the estimate is compared with free memory.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.model.loading import inspect_model_folder
from unlearn_studio.core.model.lora_targets import find_lora_targets
from unlearn_studio.core.project.config import RunConfig

HEADROOM = 1.2  # allocator fragmentation, CUDA context, framework buffers
FP32 = 4
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Activations kept per token and layer for backward, in units of hidden size (attention inputs,
# q/k/v/o, norms, residuals) and of the MLP's intermediate size (gate, up, act, down input).
# A rough count for Llama-style blocks without activation checkpointing.
PER_TOKEN_HIDDEN = 12
PER_TOKEN_INTERMEDIATE = 4
OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd": 0}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per part; ``device`` and ``dtype`` are the ones the run will use."""

    weights: int
    adapter: int  # LoRA weights
    gradients: int
    optimizer: int
    activations: int
    lora_parameters: int
    lora_modules: int
    device: str
    dtype: str
    batch_size: int
    max_length: int
    forward_passes: int  # training forward passes per step (one per data role trained on)

    @property
    def total(self) -> int:
        return self.weights + self.adapter + self.gradients + self.optimizer + self.activations

    def parts(self) -> list[tuple[str, int]]:
        return [
            (f"base weights ({self.dtype})", self.weights),
            (f"LoRA weights ({self.lora_parameters:,} parameters in {self.lora_modules} modules)", self.adapter),
            ("gradients", self.gradients),
            ("optimizer states", self.optimizer),
            ((f"activations (batch {self.batch_size} × {self.max_length} tokens × "
              f"{self.forward_passes} pass{'es' if self.forward_passes != 1 else ''})"), self.activations),
        ]

    def summary(self) -> str:
        return f"about {format_bytes(self.total)} on {self.device} (an estimate)"


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def training_roles(config: RunConfig) -> list[str]:
    """The data roles the method trains on in each step (required, and optional ones given)."""
    cls = get_method(config.method.name)
    return [*cls.roles.required, *(r for r in cls.roles.optional if r in config.data)]


def estimate_memory(config: RunConfig, *, forward_passes: int | None = None) -> MemoryEstimate:
    """Estimate the run's memory from the model's config (built on the meta device)."""
    model, facts = inspect_model_folder(
        config.resolve_model_path(), dtype=config.model.dtype, device=config.model.device,
        trust_remote_code=config.model.trust_remote_code, allow_network=config.model.allow_network)
    lora_params, modules = 0, 0
    if config.lora.enabled:
        named = dict(model.named_modules())
        for name in find_lora_targets(model, roles=config.lora.roles, layers=config.lora.layers):
            fan_in, fan_out = _fans(named[name])
            lora_params += config.lora.r * (fan_in + fan_out)
            modules += 1
    if forward_passes is None:
        try:
            forward_passes = max(1, len(training_roles(config)))
        except UserError:  # an unknown method is reported elsewhere; estimate one pass
            forward_passes = 1
    weight_bytes = DTYPE_BYTES.get(facts.dtype, FP32)
    activation_bytes = weight_bytes if config.training.mixed_precision == "no" else 2
    t = config.training
    tokens = t.batch_size * t.max_length
    intermediate = int(getattr(model.config, "intermediate_size", None) or 4 * facts.hidden_size)
    per_token = facts.n_layers * (PER_TOKEN_HIDDEN * facts.hidden_size + PER_TOKEN_INTERMEDIATE * intermediate)
    # Logits in fp32, their log-softmax and its gradient.
    logits = 3 * tokens * facts.vocab_size * FP32
    activations = forward_passes * (tokens * per_token * activation_bytes + logits)
    states = OPTIMIZER_STATES.get(config.optimizer.name, 2)
    return MemoryEstimate(
        weights=facts.n_params * weight_bytes, adapter=lora_params * FP32, gradients=lora_params * FP32,
        optimizer=states * lora_params * FP32, activations=activations, lora_parameters=lora_params,
        lora_modules=modules, device=facts.device, dtype=facts.dtype, batch_size=t.batch_size,
        max_length=t.max_length, forward_passes=forward_passes)


def _fans(module) -> tuple[int, int]:
    if hasattr(module, "in_features"):
        return int(module.in_features), int(module.out_features)
    rows, columns = module.weight.shape  # gpt2 Conv1D: (in, out)
    return int(rows), int(columns)


def available_memory(device: str) -> int | None:
    """Free memory on ``device`` in bytes (GPU: free device memory; CPU: available RAM); None if unknown."""
    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    if device == "mps":
        return None
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/meminfo", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
