"""Where LoRA goes: decoder layers, projection roles, and layer selections.

Methods speak in *roles* rather than module names, so that one recipe works on every family:
``q``, ``k``, ``v``, ``o`` (attention) and ``gate``, ``up``, ``down`` (MLP). A role is found by
looking at the actual ``nn.Linear`` / ``Conv1D`` modules inside each decoder layer and matching
their names (relative to the layer) against a table of known names. The table covers llama,
mistral, qwen2, gpt2, gpt_neox, opt and phi, and, because it matches names rather than classes,
most architectures that reuse those names.

Fused projections serve several roles: gpt2's ``c_attn`` and gpt_neox's ``query_key_value`` are
q, k and v at once, so asking for any of those roles targets the whole fused module.

Mixture-of-experts layers keep every expert's projection in one 3-D parameter
(``mlp.experts.gate_up_proj``: experts x out x in). Those are not modules: they fill the gate, up
and down roles as *expert parameters*, which PEFT adapts with ``target_parameters`` (see
core/model/lora_plan.py for when it can). The roles "auto" (or none given) mean every role the
model has.

Layer selections (see ``resolve_layers``) are inclusive and 0-based, like the papers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

from unlearn_studio.core.errors import UserError

ROLES: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")

# Candidate names per role, matched against a module's name relative to its decoder layer: a
# candidate matches when it equals that name or is a dot-separated suffix of it. Qualified
# candidates ("attn.c_proj" vs "mlp.c_proj") keep names that two roles share apart.
ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "q": ("q_proj", "query", "c_attn", "query_key_value", "qkv_proj", "Wqkv", "W_pack"),
    "k": ("k_proj", "key", "c_attn", "query_key_value", "qkv_proj", "Wqkv", "W_pack"),
    "v": ("v_proj", "value", "c_attn", "query_key_value", "qkv_proj", "Wqkv", "W_pack"),
    "o": (
        "o_proj", "out_proj", "attn.c_proj", "attention.dense", "self_attn.dense", "self_attention.dense",
    ),
    "gate": ("gate_proj", "gate_up_proj", "w1"),
    "up": ("up_proj", "gate_up_proj", "mlp.c_fc", "dense_h_to_4h", "fc1", "fc_in", "w3"),
    "down": ("down_proj", "mlp.c_proj", "dense_4h_to_h", "fc2", "fc_out", "w2"),
}

# Expert weights stored as one 3-D parameter per projection (experts x out x in), matched like the
# module candidates against the parameter's name relative to its decoder layer.
EXPERT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "gate": ("experts.gate_up_proj", "experts.gate_proj"),
    "up": ("experts.gate_up_proj", "experts.up_proj"),
    "down": ("experts.down_proj",),
}
AUTO = "auto"  # as roles: every role the model has

# Module types LoRA can wrap. gpt2 uses transformers' Conv1D (weights stored transposed);
# peft handles it with fan_in_fan_out=True, which attach_lora sets.
LORA_MODULE_TYPES = (nn.Linear, Conv1D)

LayerSelection = None | str | tuple[int, int] | Sequence[int]


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return (name, ModuleList) of the decoder layer stack, e.g. ("model.layers", ...).

    The stack is the longest ``nn.ModuleList`` whose entries all contain projections; when the
    config states the layer count, a list of exactly that length is preferred.
    """
    config = getattr(model, "config", None)
    expected = getattr(config, "num_hidden_layers", None) if config is not None else None
    best: tuple[str, nn.ModuleList] | None = None
    best_key = (-1, -1)
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if not all(any(isinstance(m, LORA_MODULE_TYPES) for m in layer.modules()) for layer in module):
            continue
        key = (int(len(module) == expected), len(module))
        if key > best_key:
            best, best_key = (name, module), key
    if best is None:
        raise UserError(
            f"Could not find the decoder layers of this {type(model).__name__} model",
            "Use a decoder-only causal language model (llama, mistral, qwen2, gpt2, gpt_neox, opt, phi, ...)",
        )
    return best


def layer_module_pattern(model: nn.Module) -> str:
    """The name pattern of one decoder layer, e.g. "model.layers.{i}"."""
    name, _ = find_decoder_layers(model)
    return f"{name}.{{i}}" if name else "{i}"


def _matches(relative_name: str, candidate: str) -> bool:
    return relative_name == candidate or relative_name.endswith("." + candidate)


def _role_matches(layer: nn.Module) -> dict[str, list[tuple[str, str]]]:
    """Per role, the (relative module name, matching candidate) pairs inside one layer.

    A projection already wrapped by peft counts as the projection itself; the Linear modules
    inside the wrapper (base_layer, lora_A, lora_B) are not candidates.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    wrapped: list[str] = []
    for rel_name, module in layer.named_modules():
        if not rel_name or any(rel_name.startswith(w + ".") for w in wrapped):
            continue
        if isinstance(module, BaseTunerLayer):
            wrapped.append(rel_name)
        elif not isinstance(module, LORA_MODULE_TYPES):
            continue
        for role in ROLES:
            for candidate in ROLE_CANDIDATES[role]:
                if _matches(rel_name, candidate):
                    found.setdefault(role, []).append((rel_name, candidate))
                    break
    return found


def _expert_matches(layer: nn.Module) -> dict[str, list[tuple[str, str]]]:
    """Per role, the (relative parameter name, matching candidate) pairs of 3-D expert weights.

    PEFT's wrappers put "base_layer." into the names of the parameters they wrap; it is left out,
    so that a wrapped layer shows the names of the original one."""
    found: dict[str, list[tuple[str, str]]] = {}
    for rel_name, param in layer.named_parameters():
        if param.ndim != 3:
            continue
        name = rel_name.replace("base_layer.", "")
        for role, candidates in EXPERT_CANDIDATES.items():
            for candidate in candidates:
                if _matches(name, candidate):
                    found.setdefault(role, []).append((name, candidate))
                    break
    return found


def discover_expert_roles(model: nn.Module) -> dict[str, list[str]]:
    """Like ``discover_roles``, for the 3-D expert weights of mixture-of-experts layers."""
    _, layers = find_decoder_layers(model)
    suffixes: dict[str, set[str]] = {}
    for layer in layers:
        for role, pairs in _expert_matches(layer).items():
            suffixes.setdefault(role, set()).update(candidate for _, candidate in pairs)
    return {role: [c for c in EXPERT_CANDIDATES[role] if c in suffixes[role]]
            for role in ROLES if role in suffixes}


def find_expert_parameters(model: nn.Module, roles: Iterable[str], layers: LayerSelection = None) -> list[str]:
    """Full names of the 3-D expert weights that fill ``roles`` in the selected ``layers``
    (``roles`` already checked), e.g. ``["model.layers.0.mlp.experts.gate_up_proj", ...]``."""
    layers_name, layer_list = find_decoder_layers(model)
    prefix = f"{layers_name}." if layers_name else ""
    names: list[str] = []
    for i in resolve_layers(layers, len(layer_list)):
        matches = _expert_matches(layer_list[i])
        for role in ROLES:
            if role in roles:
                names += [f"{prefix}{i}.{rel}" for rel, _ in matches.get(role, [])]
    return list(dict.fromkeys(names))


def discover_roles(model: nn.Module) -> dict[str, list[str]]:
    """Map each role found in the model to the module-name suffixes that fill it.

    Suffixes are the table's names (e.g. ``{"q": ["q_proj"], "o": ["attn.c_proj"]}``), in table
    order; roles the model does not have (gpt2 has no ``gate``) are left out.
    """
    _, layers = find_decoder_layers(model)
    suffixes: dict[str, set[str]] = {}
    for layer in layers:
        for role, pairs in _role_matches(layer).items():
            suffixes.setdefault(role, set()).update(candidate for _, candidate in pairs)
    return {
        role: [c for c in ROLE_CANDIDATES[role] if c in suffixes[role]]
        for role in ROLES
        if role in suffixes
    }


def is_auto(roles: Iterable[str] | str | None) -> bool:
    """Whether ``roles`` asks for every role the model has (None, "auto" or ["auto"])."""
    if roles is None:
        return True
    if isinstance(roles, str):
        roles = [r.strip() for r in roles.split(",") if r.strip()]
    return list(roles) == [AUTO]


def check_roles(roles: Iterable[str] | str | None, available: Iterable[str], model: nn.Module) -> list[str]:
    """The roles asked for, in table order; "auto" gives every role in ``available``. An explicit
    list is strict: a role the model lacks raises UserError naming the roles it has."""
    available = [r for r in ROLES if r in set(available)]
    if is_auto(roles):
        return available
    if isinstance(roles, str):
        roles = [r.strip() for r in roles.split(",") if r.strip()]
    roles = list(dict.fromkeys(roles))
    if AUTO in roles:
        raise UserError(f"LoRA roles {', '.join(roles)} mix \"auto\" with named roles",
                        'Use roles = ["auto"] (every projection the model has) or name the roles alone')
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise UserError(
            f"Unknown LoRA role(s): {', '.join(unknown)}",
            f"Use roles from: {', '.join(ROLES)}, or \"auto\" for every one the model has",
        )
    missing = [r for r in roles if r not in available]
    if missing:
        raise UserError(
            f"This {type(model).__name__} model has no module for role(s) {', '.join(missing)}; "
            f"roles found: {', '.join(available) or 'none'}",
            "Choose LoRA roles from the roles found, or roles = [\"auto\"] for every projection the model has",
        )
    if not roles:
        raise UserError("No LoRA roles were chosen", f"Choose at least one of: {', '.join(available)}")
    return [r for r in ROLES if r in roles]


def find_lora_targets(
    model: nn.Module,
    roles: Iterable[str] | str | None = None,
    layers: LayerSelection = None,
) -> list[str]:
    """Full names of the modules that fill ``roles`` in the selected ``layers``.

    ``roles`` is a subset of ``ROLES`` (a list or "q,v"); None or "auto" means every role the
    model has. A role the model lacks raises UserError listing the roles found; a role that only
    3-D expert weights fill (see ``find_expert_parameters``) adds no module here. ``layers`` is any
    selection ``resolve_layers`` accepts. Names come out in model order without duplicates (a fused
    qkv module appears once), e.g. ``["model.layers.4.self_attn.q_proj", ...]``.
    """
    layers_name, layer_list = find_decoder_layers(model)
    chosen = check_roles(roles, [*discover_roles(model), *discover_expert_roles(model)], model)
    indices = resolve_layers(layers, len(layer_list))
    prefix = f"{layers_name}." if layers_name else ""
    names: list[str] = []
    for i in indices:
        matches = _role_matches(layer_list[i])
        wanted = {rel for role in chosen for rel, _ in matches.get(role, [])}
        for rel_name, _ in layer_list[i].named_modules():
            if rel_name in wanted:
                names.append(f"{prefix}{i}.{rel_name}")
    return names


def _bad_range(text: object, n_layers: int) -> UserError:
    return UserError(
        f"Layer range {text!r} does not fit this model's {n_layers} layers (0-{n_layers - 1})",
        f"Give layers between 0 and {n_layers - 1} as '4-7', '4,5,7', (start, end) or a fraction "
        "of depth such as '0.125-0.25'",
    )


_FRACTION = re.compile(r"^\s*(\d*\.\d+|[01])\s*-\s*(\d*\.\d+|[01])\s*$")


def fraction_to_layers(start: float, end: float, n_layers: int) -> tuple[int, int]:
    """Map a fraction-of-depth range onto layer indices, inclusive.

    Layer i spans depth [i/n, (i+1)/n); the result is every layer whose span overlaps
    [start, end): first = floor(start*n), last = ceil(end*n) - 1, and always at least one
    layer. Example: 0.125-0.25 of 32 layers is 4-7; of 8 layers it is 1-1; 0.5-1.0 of 2 is 1-1.
    """
    # Round away float noise (0.3 * 10 = 3.0000000000000004) before floor/ceil.
    first = math.floor(round(start * n_layers, 9))
    last = math.ceil(round(end * n_layers, 9)) - 1
    first = min(first, n_layers - 1)
    return first, max(first, min(last, n_layers - 1))


def resolve_layers(layers: LayerSelection, n_layers: int) -> list[int]:
    """Turn a layer selection into sorted 0-based layer indices; bad input raises UserError.

    Accepted forms: None (all layers); "4-7" (inclusive); "4,5,7" and mixes like "0-1,5";
    a tuple (start, end), inclusive; a list of indices; a fraction-of-depth range
    "0.125-0.25" (see ``fraction_to_layers`` for the rounding).
    """
    if layers is None:
        return list(range(n_layers))
    if isinstance(layers, str):
        text = layers.strip()
        if not text or text.lower() == "all":
            return list(range(n_layers))
        fraction = _FRACTION.match(text)
        if fraction and "." in text:
            start, end = float(fraction.group(1)), float(fraction.group(2))
            if not 0.0 <= start <= end <= 1.0:
                raise _bad_range(layers, n_layers)
            first, last = fraction_to_layers(start, end, n_layers)
            return list(range(first, last + 1))
        indices: set[int] = set()
        for part in text.split(","):
            bounds = [b.strip() for b in part.split("-")]
            if len(bounds) not in (1, 2) or not all(b.isdigit() for b in bounds):
                raise _bad_range(layers, n_layers)
            lo, hi = int(bounds[0]), int(bounds[-1])
            if lo > hi or hi >= n_layers:
                raise _bad_range(layers, n_layers)
            indices.update(range(lo, hi + 1))
        return sorted(indices)
    if isinstance(layers, tuple) and len(layers) == 2:
        lo, hi = layers
        if not (isinstance(lo, int) and isinstance(hi, int)) or not 0 <= lo <= hi < n_layers:
            raise _bad_range(layers, n_layers)
        return list(range(lo, hi + 1))
    if isinstance(layers, Sequence):
        if not layers or not all(isinstance(i, int) and 0 <= i < n_layers for i in layers):
            raise _bad_range(layers, n_layers)
        return sorted(set(layers))
    raise _bad_range(layers, n_layers)


def scale_layer_range(
    paper_range: tuple[int, int] = (4, 7), paper_depth: int = 32, depth: int = 32
) -> tuple[int, int]:
    """Map an inclusive layer range from a paper's model onto a model with ``depth`` layers.

    Uses the same rule as ``fraction_to_layers`` on [start/paper_depth, (end+1)/paper_depth),
    so layers 4-7 of 32 become 1-1 of 8, 2-3 of 16 and 0-0 of 2; at least one layer results.
    """
    start, end = paper_range
    if not 0 <= start <= end < paper_depth:
        raise _bad_range(paper_range, paper_depth)
    if depth < 1:
        raise UserError(
            f"A model with {depth} layers has no layers to select", "Use a model with at least one layer"
        )
    # Integer arithmetic: floor(start*depth/pd) and ceil((end+1)*depth/pd) - 1, no float noise.
    first = min(start * depth // paper_depth, depth - 1)
    last = -(-(end + 1) * depth // paper_depth) - 1
    return first, max(first, min(last, depth - 1))
