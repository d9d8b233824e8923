"""Counting the tokens a step trains on: every forward pass through the model that records a graph.

The drawn batches alone undercount methods that build extra sequences inside their step (SKU's
mismatched answers, ICU's neighbours, ELM's consistency continuations) and overcount none, while
frozen passes (no gradient) are work but not training. So the runner counts at the model itself.
"""

from __future__ import annotations

import torch


class TrainedTokenCounter:
    """Attached to a model as a forward pre-hook; ``start`` before a step, ``total`` after it."""

    def __init__(self, model: torch.nn.Module):
        self._count: torch.Tensor | int = 0
        self._handle = model.register_forward_pre_hook(self._count_forward, with_kwargs=True)

    def _count_forward(self, module, args, kwargs) -> None:
        if not torch.is_grad_enabled():
            return
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if mask is not None:
            # Kept as a tensor on the model's device: no synchronisation until the step's end.
            self._count = self._count + mask.sum()
        elif ids is not None:
            self._count = self._count + ids.numel()

    def start(self) -> None:
        self._count = 0

    def total(self) -> int:
        return int(self._count)

    def remove(self) -> None:
        self._handle.remove()
