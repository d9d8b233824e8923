"""LoRA on the 3-D expert weights of mixture-of-experts layers, as PEFT stores it, split into one
ordinary LoRA pair per expert and joined back, so that adapter arithmetic works on it as on any
module.

PEFT (``target_parameters``, ``lora.ParamWrapper``) keeps one rank-r LoRA per expert in a single
pair: lora_A is (E·r, in) with the experts one after the other, lora_B is (out, r·E) with the
expert as the fastest-moving index; the delta of expert e is B[:, e::E] @ A[e·r:(e+1)·r]. The
saved keys name the module holding the weights (``mlp.experts``, nested ``mlp.experts.base_layer``
for a second weight on the same module), not the weight: which modules hold expert LoRA is read
from the adapter's ``target_parameters``.
"""

from __future__ import annotations

from typing import Any

import torch

BASE_LAYER = ".base_layer"


def expert_module_names(config: dict[str, Any]) -> list[str]:
    """The module paths (possibly dot-suffixes, as PEFT matches them) that ``target_parameters``
    puts LoRA on, e.g. "mlp.experts" for "mlp.experts.gate_up_proj"."""
    return [name.rpartition(".")[0] for name in config.get("target_parameters") or [] if "." in name]


def is_expert_module(name: str, expert_modules: list[str]) -> bool:
    """Whether the saved module ``name`` (e.g. "model.layers.0.mlp.experts.base_layer") holds expert LoRA."""
    while name.endswith(BASE_LAYER):
        name = name[: -len(BASE_LAYER)]
    return any(name == path or name.endswith("." + path) for path in expert_modules)


def split_experts(A: torch.Tensor, B: torch.Tensor, experts: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(A_e, B_e)] per expert: A_e (r, in), B_e (out, r)."""
    rank = A.shape[0] // experts
    blocks_a = A.reshape(experts, rank, A.shape[1])
    blocks_b = B.reshape(B.shape[0], rank, experts)
    return [(blocks_a[e], blocks_b[:, :, e]) for e in range(experts)]


def join_experts(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, A) in PEFT's layout from per-expert (B_e, A_e) of equal rank."""
    A = torch.stack([a for _, a in pairs])  # (E, r, in)
    B = torch.stack([b for b, _ in pairs], dim=2)  # (out, r, E)
    return B.reshape(B.shape[0], -1), A.reshape(-1, A.shape[2])


def pad_rank(B: torch.Tensor, A: torch.Tensor, rank: int, experts: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The same LoRA with every expert's rank zero-padded to ``rank``."""
    pairs = split_experts(A, B, experts)
    padded = []
    for a, b in pairs:
        missing = rank - a.shape[0]
        padded.append((torch.cat([b, b.new_zeros(b.shape[0], missing)], 1), torch.cat([a, a.new_zeros(missing, a.shape[1])])))
    if experts == 1:
        return padded[0]
    return join_experts(padded)
