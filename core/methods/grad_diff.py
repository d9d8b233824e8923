"""Gradient difference (GradDiff): gradient ascent on the forget answers, descent on the retain.

Liu et al., Continual Learning and Private Unlearning, arXiv 2203.12817 (the "GradDiff"
baseline of TOFU, arXiv 2401.06121): L = −CE(forget) + w·CE(retain), w = 1 as in TOFU.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from unlearn_studio.core.methods.base import (
    Batch,
    DataRoles,
    Hyperparameter,
    MethodContext,
    UnlearningMethod,
    forward_logits,
)
from unlearn_studio.core.methods.losses import mean_answer_ce
from unlearn_studio.core.methods.registry import register


@register
class GradDiff(UnlearningMethod):
    name = "grad_diff"
    title = "GradDiff"
    summary = "Gradient ascent on the forget answers plus ordinary training on the retain answers."
    paper = "Liu et al., Continual Learning and Private Unlearning, arXiv 2203.12817"
    roles = DataRoles(required=("forget", "retain"))
    terms = ("forget", "retain")
    hyperparameters = (
        Hyperparameter("retain_weight", float, 1.0, "weight of the retain CE against the forget term",
                       "TOFU (arXiv 2401.06121) GradDiff baseline: equal weights", minimum=0.0),
    )

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        forget, retain = batch["forget"], batch["retain"]
        yield {"forget": -mean_answer_ce(forward_logits(context.model, forget), forget.labels)}
        yield {"retain": self.params["retain_weight"] * mean_answer_ce(forward_logits(context.model, retain),
                                                                       retain.labels)}
