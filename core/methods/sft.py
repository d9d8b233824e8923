"""Plain supervised LoRA training (SFT): answer-token CE on the "expert" data.

Not an unlearning method by itself: Ext-Sub (arXiv 2308.08090) trains an expert and an
anti-expert adapter this way before combining them. Its recipe is ordinary instruction tuning,
the loss on the response tokens (+ EOS) only, which is what the data layer's labels give.
"""

from __future__ import annotations

import torch

from unlearn_studio.core.methods.base import (
    Batch,
    DataRoles,
    MethodContext,
    UnlearningMethod,
    forward_logits,
)
from unlearn_studio.core.methods.losses import mean_answer_ce
from unlearn_studio.core.methods.registry import register


@register
class SFT(UnlearningMethod):
    name = "sft"
    title = "SFT"
    summary = "Supervised LoRA fine-tuning on the expert answers (to train Ext-Sub's adapters)."
    paper = "Hu et al., Separate the Wheat from the Chaff (Ext-Sub), arXiv 2308.08090, §3 (training the experts)"
    roles = DataRoles(required=("expert",))
    terms = ("sft",)

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> dict[str, torch.Tensor]:
        expert = batch["expert"]
        return {"sft": mean_answer_ce(forward_logits(context.model, expert), expert.labels)}
