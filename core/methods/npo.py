"""Negative Preference Optimization (NPO): DPO with only a "losing" answer.

Zhang, Lin, Bai and Mei, Negative Preference Optimization: From Catastrophic Collapse to
Effective Unlearning, arXiv 2404.05868. On the forget answers,
L_NPO = (2/β)·mean log(1 + (pθ(y|x)/p0(y|x))^β) with sequence (summed) log-likelihoods, which
behaves like gradient ascent at first and slows down as pθ(y|x) falls below p0(y|x), so it does
not collapse the way GradAscent does. With retain data the paper's NPO+RT adds w·CE(retain).
The reference p0 is the same network with the adapter switched off (no copy of the weights).
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
from unlearn_studio.core.methods.losses import mean_answer_ce, npo_loss, sequence_nll
from unlearn_studio.core.methods.registry import register


@register
class NPO(UnlearningMethod):
    name = "npo"
    title = "NPO"
    summary = "Negative preference optimisation on the forget answers (+ retain CE when retain data is given)."
    paper = "Zhang et al., Negative Preference Optimization, arXiv 2404.05868"
    roles = DataRoles(required=("forget",), optional=("retain",))
    terms = ("forget", "retain")
    hyperparameters = (
        Hyperparameter("beta", float, 0.1, "inverse temperature β; small β behaves like GradAscent",
                       "NPO paper (arXiv 2404.05868), TOFU experiments: β = 0.1", minimum=1e-3),
        Hyperparameter("retain_weight", float, 1.0, "weight of the retain CE (used only with retain data)",
                       "NPO paper, NPO+RT: equal weights", minimum=0.0),
    )

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        forget = batch["forget"]
        with context.original_model() as original:
            nll_ref = sequence_nll(forward_logits(original, forget), forget.labels, reduction="sum")
        nll_theta = sequence_nll(forward_logits(context.model, forget), forget.labels, reduction="sum")
        yield {"forget": npo_loss(nll_theta, nll_ref, self.params["beta"])}
        retain = batch.get("retain")
        if retain is not None:
            yield {"retain": self.params["retain_weight"] * mean_answer_ce(forward_logits(context.model, retain),
                                                                           retain.labels)}
