"""ELM's passes of the frozen model (the same network with the adapter off): its logits on a text,
on an expert framing + the text and on a novice framing + the text, in one right-padded batch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from unlearn_studio.core.methods.elm.losses import align_to_text
from unlearn_studio.core.model.generate import model_device


def with_prefix(ids: Sequence[int], prefix: Sequence[int], lead: int) -> list[int]:
    """``ids`` with ``prefix`` inserted after its ``lead`` leading special tokens."""
    return [*ids[:lead], *prefix, *ids[lead:]]


def right_padded(sequences: Sequence[Sequence[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, :len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, :len(seq)] = 1
    return ids, mask


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """No dropout inside the block; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def frozen_passes(model: torch.nn.Module, rows: Sequence[Sequence[int]], expert: Sequence[Sequence[int]],
                  novice: Sequence[Sequence[int]], *, lead: int, pad_id: int,
                  width: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model's logits on each row, on expert[b] + row and on novice[b] + row (each framing
    inserted after ``lead`` special tokens), from ONE right-padded batch of 3·B rows; the framed
    logits are moved onto the row's own positions. Three [B, width, V] tensors (width defaults
    to the longest row)."""
    n = len(rows)
    width = width or max(len(r) for r in rows)
    sequences = [*rows, *(with_prefix(r, p, lead) for r, p in zip(rows, expert, strict=True)),
                 *(with_prefix(r, p, lead) for r, p in zip(rows, novice, strict=True))]
    ids, mask = right_padded(sequences, max(width, max(len(s) for s in sequences)), pad_id)
    device = model_device(model)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
    offset = torch.tensor([len(p) for p in (*expert, *novice)], device=logits.device)
    return (logits[:n, :width],
            align_to_text(logits[n:2 * n], offset[:n], width),
            align_to_text(logits[2 * n:], offset[n:], width))
