"""The loss maths of the methods, as pure functions on tensors (no model, no PEFT).

Conventions shared by every function:
- ``logits`` are [B, T, V] and ``labels`` are [B, T], as a causal LM and the data layer give them.
  Position t of the logits predicts token t+1, so token losses compare logits[:, :-1] with
  labels[:, 1:].
- A label of ``IGNORE_INDEX`` (-100) marks a position that takes no part: the prompt and the
  padding. The data layer sets it from the lengths, so padding is never found by a token id.
- Log-probabilities are computed in fp32 whatever the logits' dtype (bf16 logits lose too much
  precision in a log-softmax over a large vocabulary).
- A row or batch with no counted position gives 0, never NaN.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from unlearn_studio.core.data.templates import IGNORE_INDEX


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token negative log-likelihood of every labelled token.

    per_token_nll[b, t] = −log softmax(logits[b, t])[labels[b, t+1]]  where labels[b, t+1] ≠ −100,
    and 0 elsewhere; mask[b, t] = labels[b, t+1] ≠ −100. Both are [B, T−1].
    """
    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    per_token = F.cross_entropy(
        shifted_logits.transpose(1, 2), shifted_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return per_token, shifted_labels != IGNORE_INDEX


def sequence_nll(
    logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
) -> torch.Tensor:
    """NLL of each row's labelled tokens, [B].

    "mean": nll_b = Σ_t nll[b, t] / n_b (n_b = labelled tokens of row b; 0 when n_b = 0).
    "sum":  nll_b = Σ_t nll[b, t] = −log pθ(y_b | x_b), the sequence log-likelihood NPO uses.
    """
    per_token, mask = token_nll(logits, labels)
    total = per_token.sum(dim=1)
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    return total / mask.sum(dim=1).clamp(min=1)


def mean_answer_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The usual token-weighted cross-entropy: CE = Σ_{b,t} nll[b, t] / Σ_{b,t} mask[b, t].

    Every labelled token of the batch counts once, so a long answer weighs more than a short one
    (as in ``model(..., labels=...).loss``). 0 when the batch has no labelled token.
    """
    per_token, mask = token_nll(logits, labels)
    return per_token.sum() / mask.sum().clamp(min=1)


def npo_loss(nll_theta: torch.Tensor, nll_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """Negative Preference Optimization (Zhang et al., arXiv 2404.05868, eq. 3), [B] → scalar.

    With the sequence log-ratio r_b = log pθ(y_b|x_b) − log p0(y_b|x_b) = −(nllθ_b − nll0_b),

        L = (2/β) · mean_b log(1 + exp(β·r_b)) = −(2/β) · mean_b log σ(−β·r_b),

    written with logsigmoid so that large |β·r| neither overflows nor loses precision.
    ``nll_theta`` and ``nll_ref`` are SUMMED over the answer tokens (``sequence_nll(..., "sum")``),
    as in the NPO authors' TOFU code and open-unlearning's ``compute_batch_nll``. At θ = θ0 the
    loss is (2/β)·log 2; as β → 0 its gradient tends to that of −mean_b nllθ_b (gradient ascent).
    ``nll_ref`` carries no gradient.
    """
    log_ratio = -(nll_theta - nll_ref.detach())
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def simnpo_loss(mean_nll_theta: torch.Tensor, beta: float, delta: float = 0.0) -> torch.Tensor:
    """SimNPO (Fan et al., arXiv 2410.07163, eq. 4), [B] → scalar: NPO without the reference model,
    its sequence log-likelihood normalised by the answer's length,

        L = −(2/β) · mean_b log σ(β·(ℓθ_b − δ)),   ℓθ_b = −log pθ(y_b|x_b) / |y_b|,

    as open-unlearning computes it (trainer/unlearn/simnpo.py: the summed NLL over the answer
    tokens divided by their count, minus δ; the paper writes the margin as γ = β·δ).
    ``mean_nll_theta`` is ``sequence_nll(..., "mean")``. It falls as the answers become unlikely,
    and its gradient fades once ℓθ_b is well above δ + 1/β."""
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll_theta - delta)).mean()


def kl_to_reference(logits_ref: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(p0 ‖ pθ), summed over the vocabulary, averaged over the masked positions.

    KL_{b,t} = Σ_v p0(v) · (log p0(v) − log pθ(v)) with p0 = softmax(logits_ref[b, t]) and
    pθ = softmax(logits[b, t]); result = Σ_{b,t} mask·KL / Σ mask (``mask`` is normally the
    attention mask, so padding takes no part). ``logits_ref`` carries no gradient.
    """
    log_p0 = F.log_softmax(logits_ref.detach().float(), dim=-1)
    log_p = F.log_softmax(logits.float(), dim=-1)
    per_position = F.kl_div(log_p, log_p0, reduction="none", log_target=True).sum(dim=-1)
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp(min=1)


def _masked_mse(activations: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_{b,t} mask · Σ_d (a − target)² / (Σ mask · D): mean over counted tokens and hidden dims."""
    squared = (activations.float() - target.float()).pow(2).sum(dim=-1)
    weights = mask.to(squared.dtype)
    return (squared * weights).sum() / (weights.sum().clamp(min=1) * activations.shape[-1])


def rmu_forget_loss(
    activations: torch.Tensor, control_vector: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """RMU's forget term (Li et al., WMDP, arXiv 2403.03218): MSE(h_l, c·u).

    L = Σ_{b,t} m_{b,t} ‖h_{b,t} − c·u‖² / (Σ m · D), with h the layer-l activations [B, T, D],
    ``control_vector`` = c·u of shape [D] (the same for every token), m a 0/1 token mask [B, T]
    (the attention mask, or any narrower mask such as the answer tokens). The WMDP code takes a
    plain mean over all positions; the mask keeps padding out of it.
    """
    return _masked_mse(activations, control_vector.expand_as(activations), attention_mask)


def rmu_retain_loss(
    activations: torch.Tensor, reference_activations: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """RMU's retain term: MSE(h_l, h0_l) over masked tokens and hidden dims, where h0_l are the
    frozen (adapter-off) activations at the same layer; same formula as ``rmu_forget_loss``."""
    return _masked_mse(activations, reference_activations.detach(), attention_mask)
