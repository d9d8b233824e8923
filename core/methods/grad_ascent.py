"""Gradient ascent (GradAscent): raise the model's loss on the forget answers.

The simplest unlearning baseline (e.g. Jang et al., arXiv 2210.01504; the GA baseline of TOFU,
Maini et al., arXiv 2401.06121): minimise −CE on the forget answers. Nothing holds the rest of
the model in place, so it soon degrades everything; the other methods are measured against it.
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
class GradAscent(UnlearningMethod):
    name = "grad_ascent"
    title = "GradAscent"
    summary = "Gradient ascent on the forget answers (−CE); fast, but degrades the whole model."
    paper = "Jang et al., Knowledge Unlearning for Mitigating Privacy Risks in Language Models, arXiv 2210.01504"
    roles = DataRoles(required=("forget",))
    terms = ("forget",)

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> dict[str, torch.Tensor]:
        forget = batch["forget"]
        return {"forget": -mean_answer_ce(forward_logits(context.model, forget), forget.labels)}
