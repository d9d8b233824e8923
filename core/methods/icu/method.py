"""Iterative Contrastive Unlearning (ICU).

Tang et al., Learn while Unlearn: An Iterative Unlearning Framework for Generative Language
Models, arXiv 2407.20271, and their code (github.com/himalalps/ICU,
train_neo_meanwhile_update.py). Targets are memorized sequences (the forget role); each one has
its nearest non-target neighbour from the retain role (icu/neighbours.py). On the ACTIVE targets
of a batch and their neighbours:

    L = −uw·CE(targets) + lw·CE(neighbours) + kl·KL(p0 ‖ pθ on neighbours)

streamed as "unlearn", "neighbour" and "kl". Before the first epoch and after each one, every
target's prefix is continued greedily and compared with its true suffix; a target the model no
longer reproduces (similarity F1 < 0.3 or BLEU-4 < 0.01) is set inactive, and one that comes back
is active again (icu/refine.py). The run ends when the targets' MA and EL_10 fall below the
thresholds, when no target is active, or at the project's epoch/step cap.

Where we differ from the authors' code, and why:
- LoRA by default (the paper fine-tunes every weight): the original model p0 is the same network
  with the adapter off, so no frozen copy is held. The runner trains LoRA adapters only.
- A max-epoch cap (training.epochs or max_steps): the authors loop until the criteria hold.
- Steps whose batch has no active target are skipped (no gradient, weights untouched); the
  authors' code takes a step on an empty batch, whose mean CE is NaN.
- The KL term is KL(p0 ‖ pθ) over the neighbours' attended tokens, from the adapter-off model on
  the fly; the authors use CE against p0's stored probabilities (the same gradient), with weight
  1.0 in their current script (--kl 1.0; commits of April 2024 used 0.5).
- Flags: the paper's and the current script's thresholds (F1 0.3, BLEU 0.01; an April 2024
  commit flagged by F1 < 0.4 alone). The script logs each continuation's entropy and token
  diversity but flags by F1 and BLEU only, as we do. F1 is token-overlap F1, not BERTScore, so
  nothing is downloaded. Continuations are greedy (the script uses 2 beams) and as long as the
  true suffix.
- Stop: MA < acc and EL_10 < el over the targets, with the definitions the paper's thresholds
  were measured with (icu/refine.py): MA at every position of the sequence, EL_10 with unclipped
  10-gram counts over the last 50 cut points. Like the current script, the run also stops when no
  target is active. ``calibrate = true`` takes both thresholds from the original model's MA and
  EL_10 (the same definitions) on the holdout records (text it never saw), the idea behind the
  paper's fixed numbers, which are GPT-Neo's on its unseen data.
- Neighbours come from the model's own mean-pooled hidden states unless a local embedding model
  folder is given (the authors: all-MiniLM-L6-v2 with faiss).
- Two options of ours, off by default: ``unlearn_span = "suffix"`` leaves a target's prefix out
  of the gradient ascent (records that share a template, like the demo's, otherwise ascend on the
  template too), and ``"distinct"`` also the suffix tokens that half or more of the neighbour pool's
  records contain (the template's words and punctuation inside the suffix), so that the ascent
  falls on what is the target's own; ``flag_by_memorization`` keeps a target active while its own MA or EL is at or
  above the stop thresholds, because a continuation that goes astray at its first token says
  nothing about the later tokens, which teacher-forced MA and EL still find.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from unlearn_studio.core.data.templates import IGNORE_INDEX, collate, pad_token_id_for
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import (
    Batch,
    DataRoles,
    Hyperparameter,
    LossTerms,
    MethodContext,
    UnlearningMethod,
    forward_logits,
)
from unlearn_studio.core.methods.icu.neighbours import choose_neighbours
from unlearn_studio.core.methods.icu.refine import (
    Batches,
    Refinement,
    build_records,
    evaluating,
    file_field,
    memorization_scores,
    refine,
)
from unlearn_studio.core.methods.losses import kl_to_reference, mean_answer_ce
from unlearn_studio.core.methods.registry import register

PAPER = "ICU paper (arXiv 2407.20271)"
SHOWN_IDS = 8  # target ids named in a log line


@register
class ICU(UnlearningMethod):
    name = "icu"
    title = "ICU"
    summary = ("Iterative contrastive unlearning of memorized text: forget the targets the model still "
               "reproduces, learn their nearest neighbours, stop at the level of unseen text.")
    paper = ("Tang et al., Learn while Unlearn: An Iterative Unlearning Framework for Generative "
             "Language Models (ICU), arXiv 2407.20271")
    # retain is the neighbour pool and holdout calibrates the thresholds: both read whole, never batched.
    roles = DataRoles(required=("forget", "retain"), optional=("holdout",), not_batched=("retain", "holdout"))
    terms = ("unlearn", "neighbour", "kl")
    hyperparameters = (
        Hyperparameter("unlearn_weight", float, 1.0, "uw: weight of the gradient-ascent CE on active targets",
                       f"{PAPER}, §4.1: 1.0", minimum=0.0),
        Hyperparameter("neighbour_weight", float, 0.5, "lw: weight of the CE on the targets' neighbours",
                       f"{PAPER}, §4.1: 0.5", minimum=0.0),
        Hyperparameter("kl_weight", float, 1.0, "weight of KL(p0 ‖ pθ) on the neighbours",
                       f"{PAPER} and its current script: 1.0 (commits of April 2024: 0.5)", minimum=0.0),
        Hyperparameter("f1_threshold", float, 0.3, "a target whose continuation has token F1 below this is forgotten",
                       f"{PAPER}, §3.3: 0.3 (BERTScore F1 there)", minimum=0.0, maximum=1.0),
        Hyperparameter("bleu_threshold", float, 0.01, "a target whose continuation has BLEU-4 below this is forgotten",
                       f"{PAPER}, §3.3: 0.01", minimum=0.0, maximum=1.0),
        Hyperparameter("ma_threshold", float, 0.5994, "stop once the targets' MA (every position of the "
                       "sequence) is below this, and EL_10 too", f"{PAPER}: MA of GPT-Neo on unseen data, 0.5994",
                       minimum=0.0, maximum=1.0),
        Hyperparameter("el_threshold", float, 0.0499, "stop once the targets' EL_10 (unclipped, last 50 cut "
                       "points) is below this, and MA too", f"{PAPER}: EL_10 of GPT-Neo on unseen data, 0.0499",
                       minimum=0.0, maximum=1.0),
        Hyperparameter("flag_by_memorization", bool, False, "a target also stays active while its own MA or "
                       "EL is at or above the stop thresholds (its continuation may go astray while its later "
                       "tokens are still memorized)", "ours; the paper flags by the continuation alone"),
        Hyperparameter("calibrate", bool, False, "take both thresholds from the original model's MA and EL_10 on "
                       "the holdout records (needs a holdout role)", "ours: the paper's thresholds are the "
                       "level of unseen text for its models"),
        Hyperparameter("prefix_tokens", int, 50, "prefix length of text rows without a 'prefix' field "
                       "(at most half the text)", "ICU code: 50-token prefixes", minimum=1, advanced=True),
        Hyperparameter("embedding_model", str, "", "folder of a local sentence-embedding model for the "
                       "neighbour search; empty = the model's own mean-pooled hidden states",
                       "ours (the authors: all-MiniLM-L6-v2)", advanced=True),
        Hyperparameter("unlearn_span", str, "sequence", "tokens of a target the gradient ascent covers: the "
                       "whole sequence, only the suffix the refinement checks, or only the suffix tokens that are "
                       "its own (\"distinct\": not in half or more of the neighbour pool's records, so not the "
                       "template every record shares)", f"{PAPER}: the whole sequence; \"suffix\" and "
                       "\"distinct\" are ours, for records that share a template",
                       choices=("sequence", "suffix", "distinct")),
    )

    def __init__(self, params: dict[str, Any] | None = None):
        super().__init__(params)
        self.records = []  # forget rows as (ids, prefix length); set by prepare
        self.target_ids: list[str] = []  # the forget rows' "id" field, else "#row"
        self.neighbours: list[int] = []  # retain index of each target's neighbour
        self.flags: list[int] = []  # 1 = target still reproduced: unlearn it
        self.thresholds = (self.params["ma_threshold"], self.params["el_threshold"])
        self.history: list[dict[str, float]] = []  # one entry per refinement
        self.shared_tokens: set[int] = set()  # token ids of the template the retain records share

    # ---- before training ---------------------------------------------------------------------

    def prepare(self, context: MethodContext, batches: dict[str, list[Batch]]) -> None:
        """Neighbours, thresholds, and the first refinement (before epoch 1)."""
        forget = context.data["forget"]
        self.records = build_records(forget, context.tokenizer, self.params["prefix_tokens"])
        self.target_ids = [given or f"#{i}" for i, given in enumerate(file_field(forget.loaded, "id"))]
        self.shared_tokens = shared_tokens(context.data["retain"].examples)
        with evaluating(context.model):
            self.neighbours = choose_neighbours(context, self.params["embedding_model"])
            if self.params["calibrate"]:
                self.thresholds = self._calibrated(context)
        context.log("info", f"ICU: stop when MA < {self.thresholds[0]:.4f} and EL < {self.thresholds[1]:.4f}"
                            + (" (the original model on the holdout records)" if self.params["calibrate"] else ""))
        self.history = []
        self.refine(context, epoch=0)
        if not any(self.flags):
            context.log("warning", "ICU: the model reproduces none of the forget targets to begin with; "
                                   "there is nothing to unlearn and the run ends after the first epoch")

    def _calibrated(self, context: MethodContext) -> tuple[float, float]:
        holdout = context.data.get("holdout")
        if holdout is None:
            raise UserError("ICU's calibrate = true needs holdout records (text the model never saw)",
                            "Add [data.holdout] to the project file, or set calibrate = false and give "
                            "ma_threshold and el_threshold.")
        records = build_records(holdout, context.tokenizer, self.params["prefix_tokens"])
        with context.original_model() as original:
            scores = memorization_scores(original, context.tokenizer, records,
                                         Batches.for_training_batch(context.batch_size), context.check_stop)
        return scores.ma, scores.el

    # ---- refinement --------------------------------------------------------------------------

    def refine(self, context: MethodContext, epoch: int) -> Refinement:
        """Recompute every target's flag and the targets' MA and EL; report and log them."""
        result = refine(context.model, context.tokenizer, self.records,
                        f1_threshold=self.params["f1_threshold"], bleu_threshold=self.params["bleu_threshold"],
                        keep_above=self.thresholds if self.params["flag_by_memorization"] else None,
                        batches=Batches.for_training_batch(context.batch_size), check=context.check_stop)
        came_back = [i for i, (old, new) in enumerate(zip(self.flags, result.flags)) if new and not old]
        self.flags = result.flags
        self.history.append({"epoch": epoch, "active": result.active, "ma": result.ma, "el": result.el})
        context.report({"icu/active_targets": result.active, "icu/ma": result.ma, "icu/el": result.el,
                        "icu/bleu": sum(result.bleu) / len(result.bleu), "icu/f1": sum(result.f1) / len(result.f1)})
        active_ids = [self.target_ids[i] for i, flag in enumerate(self.flags) if flag]
        message = (f"ICU {'before epoch 1' if epoch == 0 else f'after epoch {epoch}'}: "
                   f"{result.active}/{len(self.flags)} targets still reproduced, MA {result.ma:.4f}, "
                   f"EL {result.el:.4f}; active: {_listing(active_ids)}")
        if came_back:
            message += f"; reproduced again: {_listing([self.target_ids[i] for i in came_back])}"
        context.log("info", message)
        return result

    def on_epoch_end(self, context: MethodContext, epoch: int) -> bool:
        result = self.refine(context, epoch)
        ma_limit, el_limit = self.thresholds
        if result.ma < ma_limit and result.el < el_limit:
            context.log("info", f"ICU: MA {result.ma:.4f} < {ma_limit:.4f} and EL {result.el:.4f} < {el_limit:.4f}: "
                                "the targets are at the level of unseen text")
            return True
        if result.active == 0:
            context.log("info", "ICU: no target is reproduced any more")
            return True
        return False

    # ---- one step ----------------------------------------------------------------------------

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> LossTerms:
        if not self.flags:
            raise RuntimeError("ICU.prepare must run before loss_terms")
        forget = batch["forget"]
        rows = forget.extra["index"].tolist()
        active = [position for position, row in enumerate(rows) if self.flags[row]]
        if not active:  # nothing to unlearn here: terms without gradient make the runner skip the step
            zero = torch.zeros((), device=forget.input_ids.device)
            return {name: zero.clone() for name in self.terms}
        return self._groups(context, forget, [rows[p] for p in active], active)

    def _groups(self, context: MethodContext, forget: Batch, rows: list[int],
                positions: list[int]) -> Iterator[dict[str, torch.Tensor]]:
        """Two passes, each backpropagated before the next: the active targets, then their neighbours."""
        yield {"unlearn": -self.params["unlearn_weight"] * self._target_ce(context, forget, rows, positions)}
        yield self._neighbour_terms(context, rows, forget.input_ids.device)

    def _target_ce(self, context: MethodContext, forget: Batch, rows: list[int], positions: list[int]) -> torch.Tensor:
        keep = torch.tensor(positions, device=forget.input_ids.device)
        labels = forget.labels[keep].clone()
        if self.params["unlearn_span"] in ("suffix", "distinct"):
            for i, row in enumerate(rows):
                labels[i, :self.records[row].n_prefix] = IGNORE_INDEX
        if self.params["unlearn_span"] == "distinct" and self.shared_tokens:
            shared = torch.isin(labels, torch.tensor(sorted(self.shared_tokens), device=labels.device))
            labels[shared] = IGNORE_INDEX
        targets = Batch(forget.input_ids[keep], forget.attention_mask[keep], labels)
        return mean_answer_ce(forward_logits(context.model, targets), targets.labels)

    def _neighbour_terms(self, context: MethodContext, rows: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        pool = context.data["retain"].examples
        tensors = collate([pool[self.neighbours[row]] for row in rows], pad_token_id_for(context.tokenizer))
        neighbours = Batch(tensors["input_ids"], tensors["attention_mask"], tensors["labels"]).to(device)
        with context.original_model() as original:
            reference_logits = forward_logits(original, neighbours)
        neighbour_logits = forward_logits(context.model, neighbours)
        return {
            "neighbour": self.params["neighbour_weight"] * mean_answer_ce(neighbour_logits, neighbours.labels),
            "kl": self.params["kl_weight"] * kl_to_reference(reference_logits, neighbour_logits,
                                                             neighbours.attention_mask),
        }

    # ---- resume ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"flags": list(self.flags), "neighbours": list(self.neighbours),
                "thresholds": list(self.thresholds), "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.records and len(state["flags"]) != len(self.records):
            raise UserError(f"The checkpoint has ICU flags for {len(state['flags'])} targets, but the forget data "
                            f"has {len(self.records)} rows",
                            "Resume with the forget data the run was started with.")
        self.flags = [int(flag) for flag in state["flags"]]
        self.neighbours = [int(i) for i in state["neighbours"]]
        self.thresholds = tuple(float(x) for x in state["thresholds"])
        self.history = [dict(entry) for entry in state["history"]]


def shared_tokens(examples: list[dict], share: float = 0.5) -> set[int]:
    """Token ids found in at least ``share`` of the records: the template they have in common (with a
    single record, nothing)."""
    if len(examples) < 2:
        return set()
    counts: dict[int, int] = {}
    for example in examples:
        for token in set(example["input_ids"]):
            counts[token] = counts.get(token, 0) + 1
    return {token for token, count in counts.items() if count >= share * len(examples)}


def _listing(ids: list[str]) -> str:
    if not ids:
        return "none"
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")
