"""The logit lens: each layer's state decoded as if it were the last (the model's final norm, then
its output head), and the rank of the true value's first token among the vocabulary there.

Rank 0 is the model's top prediction. A fact whose value still ranks near the top in the middle
layers, while the last layer no longer says it, was suppressed late rather than removed. The
final norm is found next to the decoder layers (the module beside the layer stack whose class is
a norm: Llama's ``model.norm``, GPT-2's ``transformer.ln_f``, GPT-NeoX's ``final_layer_norm``).
"""

from __future__ import annotations

import torch

from unlearn_studio.core.model.lora_targets import find_decoder_layers
from unlearn_studio.core.results.audit.hidden import States

TOP = 10  # "in the top ten": the share of rows whose value ranks below this


def final_norm(model) -> torch.nn.Module | None:
    """The norm applied after the last decoder layer, or None when none is found beside the stack."""
    name, _ = find_decoder_layers(model)
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    norms = [module for _, module in parent.named_children() if "norm" in type(module).__name__.lower()]
    return norms[-1] if norms else None


@torch.no_grad()
def value_ranks(model, states: States) -> torch.Tensor | None:
    """Per layer, the rank of each valued row's value token: [layers + 1, valued rows] (None when
    the model's final norm is not found or no row has a value position)."""
    norm, head = final_norm(model), model.get_output_embeddings()
    if norm is None or head is None or not states.valued:
        return None
    device = next(head.parameters()).device
    dtype = next(head.parameters()).dtype
    targets = torch.as_tensor(states.value_ids, device=device)
    ranks = []
    for layer in range(states.value.shape[1]):
        logits = head(norm(states.value[:, layer].to(device=device, dtype=dtype))).float()
        chosen = logits.gather(1, targets[:, None])
        ranks.append((logits > chosen).sum(dim=1).cpu())
    return torch.stack(ranks)


def summary(ranks: torch.Tensor) -> dict[str, list[float]]:
    """Per layer: the median rank and the shares of rows whose value is first, and in the top ``TOP``."""
    return {"median_rank": [float(r.float().median()) for r in ranks],
            "top1": [float((r == 0).float().mean()) for r in ranks],
            "top10": [float((r < TOP).float().mean()) for r in ranks]}
