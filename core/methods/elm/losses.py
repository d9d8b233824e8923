"""ELM's maths as pure functions on tensors (no model): the erase target, the guided sampling
scores, the alignment of prefixed passes, and the soft- and hard-label cross-entropies.

Shapes: logits are [B, T, V]; a ``mask`` [B, T] marks the positions that count (position t
predicts token t+1). Log-probabilities are taken in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def eta_ramp(mask: torch.Tensor, eta: float) -> torch.Tensor:
    """η_t per position, [B, T]: along each row's counted positions i = 0..n−1,
    η_i = 1 + (η − 1)·i/(n − 1) (torch.linspace(1, η, n)); 0 where ``mask`` is 0. A row with
    one counted position gets 1. The strength grows along the text, as in the ELM authors' code."""
    counted = mask.to(torch.float32)
    index = counted.cumsum(dim=1) - 1
    n = counted.sum(dim=1, keepdim=True)
    return (1 + (eta - 1) * index / (n - 1).clamp(min=1)) * counted


def keep_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``scores`` with all but the k largest of each position set to −inf (k ≤ 0 or ≥ V: all kept)."""
    if k <= 0 or k >= scores.shape[-1]:
        return scores
    top = scores.topk(k, dim=-1).indices
    kept = torch.full_like(scores, float("-inf"))
    return kept.scatter(-1, top, scores.gather(-1, top))


def erase_target(logits: torch.Tensor, expert_logits: torch.Tensor, novice_logits: torch.Tensor,
                 mask: torch.Tensor, *, eta: float, temperature: float, top_k: int) -> torch.Tensor:
    """ELM's erase target q_t (arXiv 2410.02760, eq. 4), [B, T, V], from three aligned passes of
    the frozen model: on the text x, and on x after an expert and after a novice framing:

        ℓ = log_softmax(z / T) for each pass;  e_t = ℓ0_t + η_t · (ℓn_t − ℓe_t);
        q_t = softmax(top_k(e_t))

    so that q_t moves probability from what the expert would say toward what the novice would
    say, more so further along the text. Positions outside ``mask`` are meaningless."""
    log0, log_expert, log_novice = (F.log_softmax(z.float() / temperature, dim=-1)
                                    for z in (logits, expert_logits, novice_logits))
    scores = log0 + eta_ramp(mask, eta).unsqueeze(-1) * (log_novice - log_expert)
    return F.softmax(keep_top_k(scores, top_k), dim=-1)


def erase_target_top_k(logits: torch.Tensor, expert_logits: torch.Tensor, novice_logits: torch.Tensor,
                       mask: torch.Tensor, *, eta: float, temperature: float,
                       top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The erase target of ``erase_target`` kept sparse, for 0 < top_k < V: the k probabilities
    of each position and their token ids ([B, T, k] each). The same numbers as the dense q_t's
    non-zero entries, but built in place, so that a real vocabulary does not cost several more
    [B, T, V] tensors than the passes themselves."""
    scores = F.log_softmax(novice_logits.float() / temperature, dim=-1)
    scores.sub_(F.log_softmax(expert_logits.float() / temperature, dim=-1))
    scores.mul_(eta_ramp(mask, eta).unsqueeze(-1))
    scores.add_(F.log_softmax(logits.float() / temperature, dim=-1))
    kept, token_ids = scores.topk(top_k, dim=-1)
    return F.softmax(kept, dim=-1), token_ids


def guided_scores(logits: torch.Tensor, expert_logits: torch.Tensor, novice_logits: torch.Tensor,
                  guidance: float) -> torch.Tensor:
    """Log-scores for sampling a consistency continuation: log p0 + γ·(log p_novice − log p_expert)."""
    log0, log_expert, log_novice = (F.log_softmax(z.float(), dim=-1)
                                    for z in (logits, expert_logits, novice_logits))
    return log0 + guidance * (log_novice - log_expert)


def align_to_text(prefixed_logits: torch.Tensor, offsets: torch.Tensor, width: int) -> torch.Tensor:
    """Logits of a prefixed pass moved onto the positions of the plain text, [B, width, V]:
    out[b, t] = prefixed_logits[b, t + offsets[b]], where offsets[b] is the number of prefix
    tokens inserted into row b. Positions past a row's end are clamped (mask them)."""
    positions = torch.arange(width, device=prefixed_logits.device).unsqueeze(0) + offsets.unsqueeze(1)
    positions = positions.clamp(max=prefixed_logits.shape[1] - 1)
    index = positions.unsqueeze(-1).expand(-1, -1, prefixed_logits.shape[-1])
    return prefixed_logits.gather(1, index)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """−Σ_v q_t(v) log pθ_t(v), averaged over the masked positions (0 when none counts).
    ``target`` q carries no gradient; zeros in it (top-k) take no part."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    per_position = -(target.detach() * log_p).sum(dim=-1)
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp(min=1)


def sparse_soft_cross_entropy(logits: torch.Tensor, probabilities: torch.Tensor, token_ids: torch.Tensor,
                              mask: torch.Tensor) -> torch.Tensor:
    """``soft_cross_entropy`` against a target given by its non-zero entries (``erase_target_top_k``)."""
    log_p = F.log_softmax(logits.float(), dim=-1).gather(-1, token_ids)
    per_position = -(probabilities.detach() * log_p).sum(dim=-1)
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp(min=1)


def hard_cross_entropy(logits: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """−log pθ_t(target_t), averaged over the masked positions (0 when none counts); ELM's retain
    loss with target_t = argmax p0_t."""
    per_position = F.cross_entropy(logits.float().transpose(1, 2), target_ids, reduction="none")
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp(min=1)
