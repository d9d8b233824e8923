"""Selective Knowledge negation Unlearning (SKU): learn the harm, then subtract what was learned.

Liu, Lai, Li, Zhang, Tian, Liu, Towards Safer Large Language Models through Machine Unlearning,
arXiv 2402.10058, and the authors' code (franciscoliu/SKU, harmful_unlearn/unlearn_harm_new.py
and utils.py).

Stage 1, harmful knowledge acquisition: a LoRA adapter is trained by gradient DESCENT on

    L = ε1·L_GD + ε2·L_RD + ε3·L_PD

- L_GD (guided distortion): answer CE on the harmful (question, harmful answer) pairs.
- L_RD (random disassociation): answer CE on each harmful question paired with K harmful answers
  of OTHER questions, so the adapter learns harm that is not tied to one question.
- L_PD (preservation divergence): −KL(p0 ‖ pθ) on normal data, which pushes the harmful adapter
  away from normal behaviour so that negating it later leaves normal behaviour alone.
Stage 2, knowledge negation: θ* = θ0 − λ·τ with τ the learned delta. For a LoRA delta s·B·A this
is B → −λ·B, done in place on the adapter just before it is saved and evaluated
(``finalize_adapter``); checkpoints keep the un-negated adapter so that a run can resume. The two
stages are declared as the method's recipe (``stages``: "learn", then "negate"), which the runner
executes.

Where we differ from the authors' code, and why:
- L_RD covers the answer tokens only, as the paper describes. Their code computes the answer's
  start as ``len(tokenizer(prefix))``, the number of keys of the tokenizer's output (2 or 3), so
  it trains nearly the whole question too.
- L_RD draws K answers for EACH question from the other harmful answers (distinct texts, never
  the question's own answer), from a generator seeded by (run seed, step, row), so a resumed run
  draws the same ones. Their code draws one set of K per batch from the whole pool with Python's
  global RNG, the question's own answer included.
- L_GD and L_RD mean the answer CE per sequence, then over sequences, as their code does; padding
  is masked by the attention mask (their code masks token id 1, which is not padding for every
  tokenizer).
- L_PD: their code takes −KL over every position of the padded batch; here over the attention
  mask. The term is unbounded below, as in the paper: minimising it drives KL → ∞, which only the
  step budget stops. ``kl_cap`` is OUR option, off by default (0, the paper's term): with a cap the
  per-position KL is clamped at ``kl_cap`` nats first, L_PD = −mean min(KL_t, cap), so positions
  that reached it stop pulling and the loss stays in [−cap, 0]. (To first order, negating the
  adapter moves normal outputs as far from p0 as the adapter did, so an unbounded push can hurt
  normal behaviour after negation; with every position's KL above the cap the capped term's
  gradient is exactly 0, while the paper's still pushes.)
- No full copies of the weights: p0 is the same network with the adapter off, and negation is
  B → −λB on the adapter. The reference merges LoRA, then subtracts state dicts (3–4 A100s).
- Defaults are the paper's (ε1 = ε2 = 2.5, ε3 = 1, K = 5, λ = 1, no cap); their script's defaults
  differ (ε1 0.5, ε2 1, lr 2e-5).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from unlearn_studio.core.data.templates import collate, pad_token_id_for, tokenize_example
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import (
    Batch,
    DataRoles,
    Finish,
    Hyperparameter,
    MethodContext,
    Train,
    UnlearningMethod,
    forward_logits,
)
from unlearn_studio.core.methods.losses import sequence_nll
from unlearn_studio.core.methods.registry import register

PAPER = "SKU paper (arXiv 2402.10058)"
LORA_B_NAMES = frozenset({"lora_B", "lora_embedding_B"})  # PEFT's up-projections, whose sign is the delta's


# ---- pure pieces (tensors and lists in, tensors and lists out) ------------------------------------


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over sequences of each sequence's mean answer-token CE (labels −100 on prompt and
    padding take no part), as the authors' ``get_answer_loss("gd", ...)``. 0 for no answer tokens."""
    return sequence_nll(logits, labels, reduction="mean").mean()


def per_position_kl(logits_ref: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(p0 ‖ pθ)_{b,t} = Σ_v p0(v)·(log p0(v) − log pθ(v)), [B, T], in fp32; p0 carries no gradient."""
    log_p0 = F.log_softmax(logits_ref.detach().float(), dim=-1)
    log_p = F.log_softmax(logits.float(), dim=-1)
    return F.kl_div(log_p, log_p0, reduction="none", log_target=True).sum(dim=-1)


def preservation_divergence(logits_ref: torch.Tensor, logits: torch.Tensor, attention_mask: torch.Tensor,
                            cap: float = 0.0) -> torch.Tensor:
    """L_PD = −Σ_{b,t} m·KL_{b,t} / Σ m, with m the attention mask: the negated KL of the adapter's
    model from the original (the paper's term, unbounded below). ``cap`` > 0 (our option) clamps
    each KL_{b,t} at ``cap`` first, which bounds L_PD in [−cap, 0]. 0 when the mask is empty."""
    kl = per_position_kl(logits_ref, logits)
    if cap > 0:
        kl = kl.clamp(max=cap)
    weights = attention_mask.to(kl.dtype)
    return -(kl * weights).sum() / weights.sum().clamp(min=1)


def masked_mean_kl(logits_ref: torch.Tensor, logits: torch.Tensor, attention_mask: torch.Tensor) -> float:
    """The unclamped mean KL(p0 ‖ pθ) over the attention mask (reported, not trained on)."""
    kl = per_position_kl(logits_ref, logits)
    weights = attention_mask.to(kl.dtype)
    return float((kl * weights).sum() / weights.sum().clamp(min=1))


def draw_seed(seed: int, step: int, row: int) -> int:
    """A stable seed per (seed, step, row); crc32 because Python's str hash changes per process."""
    return zlib.crc32(f"{seed}:{step}:{row}".encode())


def draw_mismatched(true_answer: str, pool: list[str], k: int, generator: torch.Generator) -> list[str]:
    """K answers from ``pool`` whose text differs from ``true_answer`` (after stripping): without
    replacement while the pool lasts, with replacement when it holds fewer than K."""
    others = [answer for answer in pool if answer.strip() != true_answer.strip()]
    if not others:
        raise ValueError("no harmful answer differs from the question's own")
    if len(others) >= k:
        chosen = torch.randperm(len(others), generator=generator)[:k]
    else:
        chosen = torch.randint(len(others), (k,), generator=generator)
    return [others[i] for i in chosen.tolist()]


def negate_lora(model: torch.nn.Module, scale: float) -> int:
    """Multiply every LoRA up-projection (B, weight and bias) by −``scale`` in place, so each
    module's delta s·B·A becomes −scale·s·B·A; returns how many tensors were changed."""
    changed = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if LORA_B_NAMES & set(name.split(".")):
                param.mul_(-scale)
                changed += 1
    return changed


# ---- the method -----------------------------------------------------------------------------------


@register
class SKU(UnlearningMethod):
    name = "sku"
    title = "SKU"
    summary = ("Learn the harmful answers in a LoRA adapter (guided distortion, random disassociation, "
               "preservation divergence), then negate the adapter.")
    paper = "Liu et al., Towards Safer Large Language Models through Machine Unlearning (SKU), arXiv 2402.10058"
    roles = DataRoles(required=("harmful", "normal"))
    terms = ("distortion", "disassociation", "preservation")
    stages = (Train("learn"), Finish("negate"))  # learn the harm in the adapter, then negate the adapter
    hyperparameters = (
        Hyperparameter("distortion_weight", float, 2.5, "ε1, weight of the guided distortion (answer CE on the "
                       "harmful pairs)", f"{PAPER}: ε1 = 2.5 (the authors' script defaults to 0.5)", minimum=0.0),
        Hyperparameter("disassociation_weight", float, 2.5, "ε2, weight of the random disassociation (answer CE "
                       "on harmful questions with other harmful answers)",
                       f"{PAPER}: ε2 = 2.5 (the authors' script defaults to 1)", minimum=0.0),
        Hyperparameter("preservation_weight", float, 1.0, "ε3, weight of the preservation divergence "
                       "(−KL from the original model on normal data)", f"{PAPER}: ε3 = 1", minimum=0.0),
        Hyperparameter("k", int, 5, "K, mismatched harmful answers per harmful question",
                       f"{PAPER} and the authors' code: K = 5", minimum=1),
        Hyperparameter("negation_lambda", float, 1.0, "λ, how much of the learned adapter is subtracted "
                       "(B → −λB at the end)", f"{PAPER}: θ* = θ0 − λτ with λ = 1", minimum=0.0),
        Hyperparameter("kl_cap", float, 0.0, "ours, off at 0 (the paper's unbounded term): clamp each "
                       "position's KL (nats) at this value, so the push away from normal behaviour stops there",
                       "ours, not the paper's (its −KL is unbounded); on the demo a cap of 1 doubled the damage to "
                       "general text after negation, 0.1 kept it small", minimum=0.0, advanced=True),
    )

    def __init__(self, params=None):
        super().__init__(params)
        self.seed: int | None = None  # drawn in prepare from the run's seeded RNG; kept in checkpoints
        self._answers: list[str] = []  # distinct harmful answer texts, the pool for L_RD
        self._max_length = 0

    def prepare(self, context: MethodContext, batches: dict[str, list[Batch]]) -> None:
        """Collect the pool of harmful answers and fix the seed of the mismatched draws."""
        harmful = context.data.get("harmful")
        if harmful is None:
            raise ValueError("SKU.prepare needs the harmful role's data in context.data")
        self._answers = list(dict.fromkeys(row["answer"] for row in harmful.loaded.rows))
        if len(self._answers) < 2:
            raise UserError("SKU's random disassociation needs at least two different harmful answers, "
                            f"but the harmful data has {len(self._answers)}",
                            "Add harmful questions with different answers to [data.harmful].")
        # Mismatched pairs are cut to the widest harmful example, which the run's max_length bounds.
        self._max_length = max(len(example["input_ids"]) for example in harmful.examples)
        if self.seed is None:
            # The runner seeds torch right before the LoRA weights are drawn, so this follows the run seed.
            self.seed = int(torch.randint(0, 2**31 - 1, (1,)))

    def state_dict(self) -> dict:
        return {"seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed") is not None:
            self.seed = int(state["seed"])

    def mismatched_batches(self, context: MethodContext, batch: Batch) -> list[Batch]:
        """K batches the size of ``batch``: in the j-th, each harmful question has the j-th of its
        K other harmful answers, tokenized with the role's template (loss on the answer tokens
        only). K batches rather than one of K times the rows: each is backpropagated on its own,
        so L_RD holds the activations of one harmful batch, not of K."""
        if self.seed is None:
            raise RuntimeError("SKU.prepare must run before loss_terms")
        harmful = context.data["harmful"]
        chunks: list[list[dict]] = [[] for _ in range(self.params["k"])]
        for row_index in batch.extra["index"].tolist():
            row = harmful.loaded.rows[row_index]
            generator = torch.Generator().manual_seed(draw_seed(self.seed, context.step, row_index))
            for chunk, answer in zip(chunks, draw_mismatched(row["answer"], self._answers, self.params["k"], generator),
                                     strict=True):
                pair = {"question": row["question"], "answer": answer, "_origin": row.get("_origin")}
                chunk.append(tokenize_example(pair, harmful.template, context.tokenizer, self._max_length,
                                              warnings=[]))
        pad_id = pad_token_id_for(context.tokenizer)
        device = batch.input_ids.device
        return [Batch(t["input_ids"], t["attention_mask"], t["labels"]).to(device)
                for t in (collate(chunk, pad_id) for chunk in chunks)]

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        """One group per forward pass: the harmful batch, each of the K mismatched batches (their
        mean over all K·B sequences is the mean of the K batch means), then the normal batch."""
        harmful, normal = batch["harmful"], batch["normal"]
        p = self.params
        yield {"distortion": p["distortion_weight"] * answer_loss(forward_logits(context.model, harmful),
                                                                   harmful.labels)}
        share = p["disassociation_weight"] / p["k"]
        for mismatched in self.mismatched_batches(context, harmful):
            yield {"disassociation": share * answer_loss(forward_logits(context.model, mismatched), mismatched.labels)}
        yield self._preservation(context, normal)

    def _preservation(self, context: MethodContext, normal: Batch) -> dict[str, torch.Tensor]:
        with context.original_model() as original:
            logits_ref = forward_logits(original, normal)
        logits_normal = forward_logits(context.model, normal)
        context.report({"sku/normal_kl": masked_mean_kl(logits_ref, logits_normal.detach(), normal.attention_mask)})
        return {"preservation": self.params["preservation_weight"] * preservation_divergence(
            logits_ref, logits_normal, normal.attention_mask, self.params["kl_cap"])}

    def finalize_adapter(self, model: torch.nn.Module) -> None:
        """Stage 2: the adapter becomes −λ times what it learned (B → −λB)."""
        if negate_lora(model, self.params["negation_lambda"]) == 0:
            raise RuntimeError("SKU found no LoRA up-projection (lora_B) to negate")
