"""What LoRA adapts in a model, and why: the roles, the modules, the 3-D expert weights, and a sentence
for the run log and `info`.

Roles "auto" (the default) adapt every attention and MLP projection the model really has: gpt2 has
no gate projection, so it gets q, k, v, o, up and down. A mixture-of-experts model keeps its
experts' projections in 3-D parameters; PEFT adapts those with ``target_parameters`` (one LoRA per
expert), but only without LoRA dropout. When it cannot, "auto" adapts the rest (attention, shared
experts) and the plan says plainly that the experts are left as they are, and why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import peft
from torch import nn

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.lora_targets import (
    ROLES,
    LayerSelection,
    check_roles,
    discover_expert_roles,
    discover_roles,
    find_decoder_layers,
    find_expert_parameters,
    find_lora_targets,
    is_auto,
    resolve_layers,
)

ATTENTION = ("q", "k", "v", "o")


@dataclass
class LoraPlan:
    """The LoRA targets of one model: plain values, so ``asdict`` gives JSON."""

    architecture: str
    auto: bool  # the roles were "auto": every role the model has
    roles: list[str]  # the roles adapted, in table order
    modules: list[str]  # full names of the Linear/Conv1D modules (PEFT target_modules)
    parameters: list[str]  # full names of 3-D expert weights (PEFT target_parameters)
    layers: list[int]  # the decoder layers adapted
    n_layers: int  # decoder layers in the model
    lacks: list[str] = field(default_factory=list)  # roles of the table the model has nowhere
    experts_left_out: bool = False  # the model has expert weights that PEFT cannot adapt here
    notes: list[str] = field(default_factory=list)  # how the experts are adapted, or why they are not

    def summary(self) -> str:
        """One line for the run log: what is adapted, in which layers, and what is not."""
        what = ", ".join(self.roles)
        counts = [f"{len(self.modules)} module{'s' if len(self.modules) != 1 else ''}"]
        if self.parameters:
            counts.append(f"{len(self.parameters)} expert weight{'s' if len(self.parameters) != 1 else ''}")
        where = "every layer" if len(self.layers) == self.n_layers else \
            f"layer{'s' if len(self.layers) != 1 else ''} {_ranges(self.layers)} of {self.n_layers}"
        text = f"LoRA on {what} ({' and '.join(counts)}, {where})"
        if self.auto:
            text += f": every projection this {self.architecture} has"
            if self.experts_left_out:
                text += " outside its experts"
            if self.lacks:
                text += f" (it has no {', '.join(self.lacks)})"
        return ". ".join([text, *self.notes]) + "."

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def peft_adapts_parameters() -> bool:
    """Whether the installed PEFT has ``target_parameters`` (LoRA on 3-D expert weights)."""
    return "target_parameters" in {f.name for f in dataclasses.fields(peft.LoraConfig)}


def plan_lora(model: nn.Module, roles=None, layers: LayerSelection = None, *, dropout: float = 0.0) -> LoraPlan:
    """The LoRA targets for ``roles`` (None, "auto" or a list; see ``check_roles``) in ``layers``.

    An explicit role list is strict (a role the model has nowhere is a UserError). Expert weights
    are targeted where PEFT can; where it cannot, an explicit role that only expert weights fill is
    a UserError, and "auto" leaves them out with a note saying why.
    """
    modules_by_role, experts_by_role = discover_roles(model), discover_expert_roles(model)
    experts_blocked = _why_experts_cannot(dropout) if experts_by_role else None
    chosen = check_roles(roles, [*modules_by_role, *experts_by_role], model)
    notes = []
    if experts_blocked:
        only_experts = [r for r in chosen if r not in modules_by_role]
        if only_experts and not is_auto(roles):
            raise UserError(f"The {'/'.join(only_experts)} projections of this {type(model).__name__} live only "
                            f"in its experts' 3-D weights, and {experts_blocked}",
                            "Set lora.dropout = 0, or leave those roles out")
        chosen = [r for r in chosen if r in modules_by_role]
        names = layer_suffixes(find_expert_parameters(model, list(experts_by_role), layers))
        kept = "only attention is adapted" if set(chosen) <= set(ATTENTION) else \
            f"only {', '.join(chosen)} outside the experts are adapted"
        notes.append(f"The experts' weights ({', '.join(names)}) are not adapted, {kept}: {experts_blocked}; "
                     "set lora.dropout = 0 to adapt them")
    if not chosen:
        raise UserError(f"This {type(model).__name__} has no projection LoRA can adapt",
                        "Use a decoder-only causal LM with attention and MLP projections")
    _, layer_list = find_decoder_layers(model)
    module_roles = [r for r in chosen if r in modules_by_role]
    modules = find_lora_targets(model, roles=module_roles, layers=layers) if module_roles else []
    parameters = [] if experts_blocked else find_expert_parameters(model, chosen, layers)
    if experts_by_role and not experts_blocked:
        notes.append(f"The experts' 3-D weights ({', '.join(layer_suffixes(parameters))}) are adapted with PEFT "
                     "target_parameters, one LoRA per expert")
    lacks = [r for r in ROLES if r not in modules_by_role and r not in experts_by_role]
    return LoraPlan(type(model).__name__, is_auto(roles), chosen, modules, parameters,
                    resolve_layers(layers, len(layer_list)), len(layer_list), lacks, bool(experts_blocked), notes)


def _why_experts_cannot(dropout: float) -> str | None:
    if not peft_adapts_parameters():
        return (f"PEFT {peft.__version__} cannot adapt 3-D weights (target_parameters needs PEFT 0.17 or "
                "newer)")
    if dropout:
        return f"PEFT adapts 3-D weights only without LoRA dropout (lora.dropout is {dropout:g})"
    return None


def layer_suffixes(names: list[str]) -> list[str]:
    """Names relative to their decoder layer, once each: "model.layers.0.mlp.experts.gate_up_proj" ->
    "mlp.experts.gate_up_proj"."""
    out = []
    for name in names:
        parts = name.split(".")
        index = next((i for i, part in enumerate(parts) if part.isdigit()), -1)
        out.append(".".join(parts[index + 1:]))
    return list(dict.fromkeys(out))


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    spans: list[list[int]] = []
    for i in indices:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
