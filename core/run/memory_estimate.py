"""An estimate of the memory a run needs, from the model's structure alone (no weights loaded).

It is an estimate, and the app says so: base weights in their dtype (the linear projections in 4
or 8 bits with a quantized base) + LoRA weights, their gradients and optimizer states (fp32, as
PEFT keeps adapters) + the activations that the training forward pass keeps for the backward pass
+ the logits. Activations are counted per token and layer as torch's saved tensors of a Llama
layer under LoRA measure them (torch.autograd.graph.saved_tensors_hooks; a frozen projection
keeps no input, its LoRA branch keeps its rank-r value): 7 values of the hidden size, 4 of the
MLP's intermediate size and r per adapted projection, in the base's dtype. bf16 autocast over
fp32 weights saves nothing here (the residual stream and the norms stay fp32; measured the same
to 0.5%); bf16 weights halve them. With gradient checkpointing each layer keeps only its input,
and one layer's values live again while it is recomputed. A method whose loss terms come one
forward pass at a time (a generator) has one pass's activations alive at once; one that returns
all its terms together keeps every role's pass. On the CPU a quantized base passes through
memory at full precision while it loads, so the peak is the larger of that and training.
Allocator overhead, CUDA context and framework buffers come on top; ``HEADROOM`` covers them
when the estimate is compared with free memory. bench/bench_memory_estimate.py measures the
estimate against real peaks.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.model.loading import inspect_model_folder
from unlearn_studio.core.model.lora_targets import find_lora_targets
from unlearn_studio.core.model.memory_savers import NAMES as QUANTIZATION_NAMES
from unlearn_studio.core.model.memory_savers import quantized_weight_bytes
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.precision import choose_precision

HEADROOM = 1.2  # allocator fragmentation, CUDA context, framework buffers
FP32 = 4
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Activations kept per token and layer for backward, in units of hidden size (norm inputs, attention
# output and its softmax statistics, residuals, LoRA inputs) and of the MLP's intermediate size
# (gate, up, act, down input), fitted to the saved tensors of Llama layers (hidden 256-1024,
# intermediate 2-4x) under LoRA on every projection.
PER_TOKEN_HIDDEN = 7
PER_TOKEN_INTERMEDIATE = 4
# Logits of a pass: the output in fp32, its log-softmax and that one's gradient.
LOGIT_COPIES = 3
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
    passes_alive: int = 1  # of them, whose activations are kept at once
    quantization: str = "none"
    quantized_weights: int = 0  # of ``weights``, the quantized projections
    gradient_checkpointing: bool = False
    autocast: str = "no"  # the effective mixed precision
    loading: int = 0  # the peak while the base loads (a quantized base on the CPU passes through at full size)

    @property
    def training(self) -> int:
        return self.weights + self.adapter + self.gradients + self.optimizer + self.activations

    @property
    def total(self) -> int:
        return max(self.training, self.loading)

    def parts(self) -> list[tuple[str, int]]:
        weights = f"base weights ({self.dtype}"
        if self.quantization != "none":
            weights += f"; linear layers {QUANTIZATION_NAMES[self.quantization]}"
        passes = (f"{self.passes_alive} of {self.forward_passes} passes alive at once"
                  if self.passes_alive != self.forward_passes
                  else f"{self.forward_passes} pass{'es' if self.forward_passes != 1 else ''}")
        how = [f"autocast {self.autocast}"] if self.autocast != "no" else []
        if self.gradient_checkpointing:
            how.append("gradient checkpointing")
        activations = (f"activations (batch {self.batch_size} × {self.max_length} tokens, {passes}"
                       + "".join(f", {item}" for item in how) + ")")
        rows = [
            (weights + ")", self.weights),
            (f"LoRA weights ({self.lora_parameters:,} parameters in {self.lora_modules} modules)", self.adapter),
            ("gradients", self.gradients),
            ("optimizer states", self.optimizer),
            (activations, self.activations),
        ]
        if self.loading > self.training:
            rows.append(("peak while the base loads (it passes through memory at full precision)", self.loading))
        return rows

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


def _passes(config: RunConfig, forward_passes: int | None) -> tuple[int, int]:
    """(training passes per step, of them alive at once)."""
    try:
        cls = get_method(config.method.name)
    except UserError:  # an unknown method is reported elsewhere; estimate one pass
        return forward_passes or 1, 1
    passes = forward_passes or max(1, len(training_roles(config)))
    one_at_a_time = inspect.isgeneratorfunction(cls.loss_terms)
    return passes, 1 if one_at_a_time else passes


def meta_model(config: RunConfig) -> tuple[Any, Any]:
    """The model built on the meta device (no weights) and its facts, as ``load_model`` would put it."""
    return inspect_model_folder(
        config.resolve_model_path(), dtype=config.model.dtype, device=config.model.device,
        trust_remote_code=config.model.trust_remote_code, allow_network=config.model.allow_network)


def estimate_memory(config: RunConfig, *, forward_passes: int | None = None, built: tuple[Any, Any] | None = None,
                    ) -> MemoryEstimate:
    """Estimate the run's memory from the model's config (built on the meta device; pass ``built``,
    from ``meta_model``, to estimate several variants of one project without building it again)."""
    model, facts = built or meta_model(config)
    lora_params, modules = 0, 0
    if config.lora.enabled:
        named = dict(model.named_modules())
        for name in find_lora_targets(model, roles=config.lora.roles, layers=config.lora.layers):
            fan_in, fan_out = _fans(named[name])
            lora_params += config.lora.r * (fan_in + fan_out)
            modules += 1
    passes, alive = _passes(config, forward_passes)
    weight_bytes = DTYPE_BYTES.get(facts.dtype, FP32)
    quantization = config.model.quantization
    weights, quantized = quantized_weight_bytes(model, quantization, weight_bytes)
    autocast = choose_precision(config.training.mixed_precision, facts.device).mixed_precision
    activation_bytes = weight_bytes  # the residual stream's dtype, autocast or not
    t = config.training
    tokens = t.batch_size * t.max_length
    intermediate = int(getattr(model.config, "intermediate_size", None) or 4 * facts.hidden_size)
    lora_per_layer = config.lora.r * modules / max(1, facts.n_layers)
    one_layer = PER_TOKEN_HIDDEN * facts.hidden_size + PER_TOKEN_INTERMEDIATE * intermediate + lora_per_layer
    if t.gradient_checkpointing:  # each layer's input, and one layer's inner values while it is recomputed
        per_token = facts.n_layers * facts.hidden_size + one_layer
    else:
        per_token = facts.n_layers * one_layer
    logits = LOGIT_COPIES * tokens * facts.vocab_size * FP32
    activations = int(alive * (tokens * per_token * activation_bytes + logits))
    states = OPTIMIZER_STATES.get(config.optimizer.name, 2)
    loading = facts.n_params * weight_bytes if quantization != "none" and facts.device == "cpu" else 0
    return MemoryEstimate(
        weights=weights, adapter=lora_params * FP32, gradients=lora_params * FP32,
        optimizer=states * lora_params * FP32, activations=activations, lora_parameters=lora_params,
        lora_modules=modules, device=facts.device, dtype=facts.dtype, batch_size=t.batch_size,
        max_length=t.max_length, forward_passes=passes, passes_alive=alive, quantization=quantization,
        quantized_weights=quantized, gradient_checkpointing=t.gradient_checkpointing, autocast=autocast,
        loading=loading)


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
