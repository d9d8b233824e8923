"""LoRA adapter arithmetic: read two PEFT LoRA adapters, check that they fit together, combine
them (Ext-Sub, subtraction, addition, negation) and write the result as a PEFT adapter folder.

Ext-Sub (Hu et al., arXiv 2308.08090) works on the dense deltas W = s·B·A, one ROW (output
feature) at a time; see ``ext_sub_dense``, kept as the test oracle. The result is never dense
here: every output row is a combination of a row of W+ and a row of W-, so

    out_i = a_i · W+_i + b_i · W-_i   ⇒   out = [diag(a)·B+, diag(b)·B-] · [A+; A-],

an exact LoRA of rank r+ + r-. With n± = |W±_i| and the shared direction c the bisector of the
two unit rows, the projection is P_i = (n-/2)(u+ + u-), which gives a_i = 1 + λ·n-/(2·n+) and
b_i = −λ/2; the row norms come from r×r Gram matrices (A+A+ᵀ, A-A-ᵀ), so the cost is O(d·r²)
and no d×d matrix is ever formed. At opposite rows that closed form tends to plain subtraction,
which is what such rows (and zero rows, where there is no direction) get.

Each adapter's scaling (lora_alpha/r, or lora_alpha/√r with rsLoRA, per module with
``rank_pattern``/``alpha_pattern``) is folded into its B first; the result is written with
lora_alpha = r, i.e. scaling 1, zero-padded to one rank for every module, in fp32.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.files import check_output_folder, write_dir_atomically
from unlearn_studio.core.model.adapter_files import (
    CONFIG_FILE,
    KEY_PREFIX,
    WEIGHTS_FILE,
    load_adapter_weights,
    read_adapter_config,
)
from unlearn_studio.core.model.expert_lora import (
    expert_module_names,
    is_expert_module,
    join_experts,
    pad_rank,
    split_experts,
)

OPERATIONS = ("ext-sub", "subtraction", "addition", "negation")
PROVENANCE_FILE = "combination.json"  # what was combined, how; PEFT ignores it
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.weight$")
# A row counts as zero when its norm is below this fraction of the largest norm its factors allow.
ZERO_ROW_TOLERANCE = 1e-6
# Rows whose unit vectors sum to less than this are opposite; there the formula is plain subtraction.
OPPOSITE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LoraModule:
    """One adapted linear module: delta W = B @ A with the adapter's scaling already in B (fp32).

    With ``experts`` > 1 it is the LoRA of a mixture-of-experts layer's 3-D weight: one pair per
    expert in PEFT's layout (core/model/expert_lora.py), each combined on its own."""

    name: str  # module path in the base model, e.g. "model.layers.0.self_attn.q_proj"
    A: torch.Tensor  # [r, in] (experts: [E·r, in])
    B: torch.Tensor  # [out, r] (experts: [out, r·E])
    experts: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.B.shape[0], self.A.shape[1]

    @property
    def rank(self) -> int:
        """The rank of each expert's pair (of the module's, for a plain module)."""
        return self.A.shape[0] // self.experts

    def per_expert(self) -> list[LoraModule]:
        return [LoraModule(self.name, a, b) for a, b in split_experts(self.A, self.B, self.experts)]

    def dense(self) -> torch.Tensor:
        """B @ A ([out, in]); for expert LoRA, one per expert ([E, out, in])."""
        if self.experts == 1:
            return self.B @ self.A
        return torch.stack([module.dense() for module in self.per_expert()])


@dataclass(frozen=True)
class LoraAdapter:
    path: Path
    config: dict[str, Any]
    modules: dict[str, LoraModule]


# ---- reading -----------------------------------------------------------------------------------


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's rule for rank_pattern/alpha_pattern keys: a regex matching the end of the name."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _scaling(config: dict[str, Any], module: str, rank: int) -> float:
    alpha = float(_pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", 8)))
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _refuse_unsupported(config: dict[str, Any], where: Path) -> None:
    """Features whose weights are more than LoRA's A and B, which the arithmetic cannot carry over."""
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(f"The adapter in {where} is a {config.get('peft_type')} adapter, not LoRA",
                        "Adapter arithmetic works on LoRA adapters; pick folders saved from LoRA training.")
    unsupported = [(key, label) for key, label in (
        ("use_dora", "DoRA"), ("lora_bias", "LoRA biases"), ("modules_to_save", "fully trained modules_to_save"),
        ("trainable_token_indices", "trainable tokens"), ("layer_replication", "layer replication"))
        if config.get(key)]
    if config.get("bias", "none") != "none":
        unsupported.append(("bias", "trained biases"))
    if unsupported:
        key, label = unsupported[0]
        raise UserError(f"The adapter in {where} uses {label} ('{key}' in {CONFIG_FILE}), which adapter "
                        "arithmetic cannot combine", "Use plain LoRA adapters (only lora_A and lora_B weights).")


def read_adapter(path: str | os.PathLike) -> LoraAdapter:
    """A PEFT LoRA adapter folder as modules with their scaling folded into B (fp32)."""
    folder = Path(path).expanduser()
    config = read_adapter_config(folder)
    _refuse_unsupported(config, folder)
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_adapter_weights(folder).items():
        match = _LORA_KEY.match(key)
        if match is None or tensor.ndim != 2:
            raise UserError(f"The adapter in {folder} holds a weight LoRA arithmetic cannot combine: {key}",
                            "Use plain LoRA adapters on linear modules (only lora_A and lora_B weights).")
        module = match["module"].removeprefix(KEY_PREFIX)
        factors.setdefault(module, {})[match["which"]] = tensor.detach().to(torch.float32)
    if not factors:
        raise UserError(f"The adapter in {folder} has no LoRA weights", "Save the adapter again after training.")
    modules = {}
    expert_modules = expert_module_names(config)
    for name, pair in sorted(factors.items()):
        if set(pair) != {"A", "B"} or pair["A"].shape[0] != pair["B"].shape[1]:
            raise UserError(f"The adapter in {folder} has an incomplete LoRA pair for module {name}",
                            "Save the adapter again; its weights file does not match its own modules.")
        rows = pair["A"].shape[0]
        rank = int(_pattern_value(config.get("rank_pattern") or {}, name, config.get("r", rows)))
        experts = rows // rank if is_expert_module(name, expert_modules) and rank and rows % rank == 0 else 1
        rank = rows // experts
        modules[name] = LoraModule(name, pair["A"], pair["B"] * _scaling(config, name, rank), experts)
    return LoraAdapter(folder, config, modules)


# ---- checks ------------------------------------------------------------------------------------


def _same_base_model(first: dict[str, Any], second: dict[str, Any]) -> bool:
    a, b = first.get("base_model_name_or_path"), second.get("base_model_name_or_path")
    if not a or not b or a == b:
        return True
    dir_a, dir_b = Path(a).expanduser(), Path(b).expanduser()
    if dir_a.is_dir() and dir_b.is_dir():
        if dir_a.resolve() == dir_b.resolve():
            return True
        # The same model copied elsewhere: the same config and the same weight file sizes.
        config_a, config_b = dir_a / "config.json", dir_b / "config.json"
        return (config_a.is_file() and config_b.is_file() and config_a.read_bytes() == config_b.read_bytes()
                and _weight_sizes(dir_a) == _weight_sizes(dir_b))
    return False


def _weight_sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")}


def check_compatible(expert: LoraAdapter, anti_expert: LoraAdapter) -> None:
    """Raise UserError unless both adapters sit on the same base model, the same modules and shapes."""
    fix_model = "Train both adapters on the same base model (or pick two adapters that were)."
    if not _same_base_model(expert.config, anti_expert.config):
        raise UserError(f"The adapters were trained on different base models: "
                        f"{expert.config.get('base_model_name_or_path')} ({expert.path}) and "
                        f"{anti_expert.config.get('base_model_name_or_path')} ({anti_expert.path})", fix_model)
    if bool(expert.config.get("fan_in_fan_out")) != bool(anti_expert.config.get("fan_in_fan_out")):
        raise UserError(f"The adapters {expert.path} and {anti_expert.path} store their weights in different "
                        "layouts (fan_in_fan_out)", fix_model)
    fix_modules = ("Train both adapters with the same LoRA targets (lora.roles and lora.layers in the project "
                   "file); their ranks and alphas may differ.")
    for name in sorted(set(expert.modules) ^ set(anti_expert.modules)):
        has, lacks = (expert, anti_expert) if name in expert.modules else (anti_expert, expert)
        raise UserError(f"The module {name} is adapted in {has.path} but not in {lacks.path}", fix_modules)
    for name, module in expert.modules.items():
        other = anti_expert.modules[name]
        if module.shape != other.shape or module.experts != other.experts:
            raise UserError(f"The module {name} has shape {_shape_text(module)} in {expert.path} "
                            f"but {_shape_text(other)} in {anti_expert.path}", fix_model)


def _shape_text(module: LoraModule) -> str:
    text = f"{module.shape[0]}×{module.shape[1]}"
    return f"{text} in {module.experts} experts" if module.experts > 1 else text


# ---- the arithmetic ----------------------------------------------------------------------------


def ext_sub_dense(plus: torch.Tensor, minus: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """The Ext-Sub formula on dense deltas, row by row, as written (METHODS.md §1): the test oracle.

    u± = W±_i/|W±_i|, c = (u+ + u-)/|u+ + u-|, P = <W-_i, c> c, out_i = W+_i − λ(W-_i − P).
    Zero rows and opposite rows get plain subtraction W+_i − λW-_i.
    """
    n_plus, n_minus = plus.norm(dim=1, keepdim=True), minus.norm(dim=1, keepdim=True)
    tiny = torch.finfo(plus.dtype).tiny
    unit_sum = plus / n_plus.clamp_min(tiny) + minus / n_minus.clamp_min(tiny)
    unit_sum_norm = unit_sum.norm(dim=1, keepdim=True)
    common = unit_sum / unit_sum_norm.clamp_min(tiny)
    projection = (minus * common).sum(dim=1, keepdim=True) * common
    out = plus - alpha * (minus - projection)
    fallback = ((n_plus <= ZERO_ROW_TOLERANCE * (n_plus.max() + tiny))
                | (n_minus <= ZERO_ROW_TOLERANCE * (n_minus.max() + tiny))
                | (unit_sum_norm <= OPPOSITE_TOLERANCE)).squeeze(1)
    out[fallback] = (plus - alpha * minus)[fallback]
    return out


def _row_norms(B: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """|B_i A| for every row from the Gram matrix A Aᵀ (float64)."""
    return ((B @ gram) * B).sum(dim=1).clamp_min(0).sqrt()


def ext_sub_factors(plus: LoraModule, minus: LoraModule, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B', A') with B'A' = ext_sub_dense(W+, W-), exactly, of rank r+ + r- (see the module docstring)."""
    B1, A1 = plus.B.double(), plus.A.double()
    B2, A2 = minus.B.double(), minus.A.double()
    gram_plus, gram_minus = A1 @ A1.T, A2 @ A2.T
    n_plus, n_minus = _row_norms(B1, gram_plus), _row_norms(B2, gram_minus)
    cosine = ((B1 @ (A1 @ A2.T)) * B2).sum(dim=1) / (n_plus * n_minus).clamp_min(torch.finfo(torch.float64).tiny)
    # |u+ + u-| = sqrt(2 + 2cos): the same opposite-rows test as the dense formula.
    unit_sum_norm = (2 + 2 * cosine).clamp_min(0).sqrt()
    fallback = ((n_plus <= ZERO_ROW_TOLERANCE * n_plus.max()) | (n_minus <= ZERO_ROW_TOLERANCE * n_minus.max())
                | (unit_sum_norm <= OPPOSITE_TOLERANCE))
    a = torch.where(fallback, 1.0, 1 + alpha * n_minus / (2 * n_plus.where(~fallback, 1.0)))
    b = torch.where(fallback, -alpha, -alpha / 2)
    B = torch.cat([a[:, None] * B1, b[:, None] * B2], dim=1)
    return B.float(), torch.cat([plus.A, minus.A], dim=0)


def combine_modules(op: str, plus: LoraModule, minus: LoraModule | None, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B', A') of one module for ``op``; ``minus`` is None for negation. Expert LoRA is combined
    expert by expert and comes back in the same layout, each expert of the same rank."""
    if plus.experts > 1:
        minus_experts = minus.per_expert() if minus is not None else [None] * plus.experts
        return join_experts([combine_modules(op, p, m, alpha) for p, m in zip(plus.per_expert(), minus_experts)])
    if op == "negation":
        return -alpha * plus.B, plus.A
    if op == "ext-sub":
        return ext_sub_factors(plus, minus, alpha)
    sign = -1.0 if op == "subtraction" else 1.0
    return torch.cat([plus.B, sign * alpha * minus.B], dim=1), torch.cat([plus.A, minus.A], dim=0)


def dense_reference(op: str, plus: torch.Tensor, minus: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """The dense result of ``op`` on deltas (what ``combine_modules`` must reproduce)."""
    if op == "negation":
        return -alpha * plus
    if op == "ext-sub":
        return ext_sub_dense(plus, minus, alpha)
    return plus - alpha * minus if op == "subtraction" else plus + alpha * minus


# ---- writing -----------------------------------------------------------------------------------


def _check_request(op: str, anti_expert_dir, alpha: float) -> None:
    if op not in OPERATIONS:
        raise UserError(f"Unknown adapter operation '{op}'", f"Use one of: {', '.join(OPERATIONS)}.")
    if op == "negation" and anti_expert_dir is not None:
        raise UserError("Negation takes one adapter, but an anti-expert was given too",
                        "Give only the adapter to negate (as the expert), or choose ext-sub or subtraction.")
    if op != "negation" and anti_expert_dir is None:
        raise UserError(f"The operation '{op}' needs an anti-expert adapter", "Give the anti-expert adapter folder.")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha < 0:
        raise UserError(f"alpha must be a finite number of 0 or more, got {alpha!r}",
                        "Use alpha = 1.0 (the paper's default) or another non-negative number.")


def _output_config(template: dict[str, Any], rank: int, modules: list[str]) -> dict[str, Any]:
    config = dict(template)
    config.update(r=rank, lora_alpha=rank, use_rslora=False, rank_pattern={}, alpha_pattern={},
                  target_modules=modules, layers_to_transform=None, layers_pattern=None, exclude_modules=None,
                  inference_mode=True, lora_dropout=0.0)
    return config


def write_adapter(out_dir: str | os.PathLike, template_config: dict[str, Any],
                  factors: dict[str, tuple[torch.Tensor, torch.Tensor]],
                  provenance: dict[str, Any] | None = None, *, overwrite: bool = False,
                  experts: dict[str, int] | None = None) -> Path:
    """Write ``{module: (B, A)}`` (scaling already in B) as a PEFT LoRA folder with scaling 1.

    Modules of lower rank are zero-padded to the highest rank, so no rank_pattern is needed;
    ``experts`` gives the modules that hold expert LoRA their number of experts (padded expert by
    expert; the template's target_parameters still name their weights).
    The folder appears complete or not at all; an existing folder is replaced only when the app
    wrote it and ``overwrite`` is set (core/files.py).
    """
    experts = experts or {}
    rank = max(A.shape[0] // experts.get(name, 1) for name, (_, A) in factors.items())
    tensors = {}
    for name, (B, A) in factors.items():
        B, A = pad_rank(B, A, rank, experts.get(name, 1))
        tensors[f"{KEY_PREFIX}{name}.lora_A.weight"] = A.float().contiguous()
        tensors[f"{KEY_PREFIX}{name}.lora_B.weight"] = B.float().contiguous()
    config = _output_config(template_config, rank, sorted(name for name in factors if name not in experts))

    def fill(folder: Path) -> None:
        save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt"})
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if provenance is not None:
            (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")

    return write_dir_atomically(Path(out_dir).expanduser(), fill, kind="adapter", what="output",
                                overwrite=overwrite)


def _check_out_dir(out: Path, inputs: list[Path], overwrite: bool) -> None:
    if any(out.resolve() == path.resolve() for path in inputs):
        raise UserError(f"The output folder {out} is one of the input adapters", "Choose a new output folder.")
    check_output_folder(out, what="output", overwrite=overwrite)


def combine_adapters(expert_dir: str | os.PathLike, anti_expert_dir: str | os.PathLike | None,
                     out_dir: str | os.PathLike, *, op: str = "ext-sub", alpha: float = 1.0,
                     overwrite: bool = False) -> Path:
    """Combine two LoRA adapters (one for "negation") into a new PEFT adapter folder ``out_dir``.

    ``op``: "ext-sub" (the expert minus the anti-expert's deficiency part, Ext-Sub), "subtraction"
    (W+ − αW-), "addition" (W+ + αW-) or "negation" (−αW+, no anti-expert). The result is an exact
    LoRA of rank ≤ r_expert + r_anti that ``PeftModel.from_pretrained`` loads. Raises UserError for
    a bad request or adapters that do not fit together, before anything is written. ``out_dir``
    must be new or empty; an earlier output of the app's is replaced only with ``overwrite``.
    """
    _check_request(op, anti_expert_dir, alpha)
    expert = read_adapter(expert_dir)
    anti = read_adapter(anti_expert_dir) if anti_expert_dir is not None else None
    if anti is not None:
        check_compatible(expert, anti)
    out = Path(out_dir).expanduser()
    _check_out_dir(out, [expert.path] + ([anti.path] if anti else []), overwrite)
    factors = {name: combine_modules(op, module, anti.modules[name] if anti else None, float(alpha))
               for name, module in expert.modules.items()}
    provenance = {"operation": op, "alpha": float(alpha), "expert": str(expert.path.resolve()),
                  "anti_expert": str(anti.path.resolve()) if anti else None,
                  "expert_rank": max(m.rank for m in expert.modules.values()),
                  "anti_expert_rank": max(m.rank for m in anti.modules.values()) if anti else None}
    experts = {name: module.experts for name, module in expert.modules.items() if module.experts > 1}
    return write_adapter(out, expert.config, factors, provenance, overwrite=overwrite, experts=experts)
