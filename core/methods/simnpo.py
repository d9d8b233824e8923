"""SimNPO: negative preference optimisation without a reference model, normalised by length.

Fan, Liu, Lin, Jia, Zhang, Mei and Liu, Simplicity Prevails: Rethinking Negative Preference
Optimization for LLM Unlearning, arXiv 2410.07163. On the forget answers,
L = −(2/β)·mean log σ(β·(ℓθ(y|x) − δ)) with ℓθ the MEAN token NLL of the answer (NPO uses the
summed log-ratio to the original model): no reference pass, and long and short answers are pushed
alike. With retain data, + retain_weight·CE(retain) (open-unlearning's SimNPO: forget weight γ = 1,
retain weight α, retain loss NLL). Its defaults are the authors' TOFU forget10 values for Llama-2-7B
(β 4.5, α 0.125, δ 0), as open-unlearning's configs/trainer/SimNPO.yaml gives them.
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
from unlearn_studio.core.methods.losses import mean_answer_ce, sequence_nll, simnpo_loss
from unlearn_studio.core.methods.registry import register

SOURCE = "SimNPO (arXiv 2410.07163), TOFU forget10 with Llama-2-7B (open-unlearning configs/trainer/SimNPO.yaml)"


@register
class SimNPO(UnlearningMethod):
    name = "simnpo"
    title = "SimNPO"
    summary = "NPO without a reference model: push the forget answers' mean token likelihood down (+ retain CE)."
    paper = "Fan et al., Simplicity Prevails: Rethinking Negative Preference Optimization, arXiv 2410.07163"
    roles = DataRoles(required=("forget",), optional=("retain",))
    terms = ("forget", "retain")
    hyperparameters = (
        Hyperparameter("beta", float, 4.5, "inverse temperature β of the length-normalised reward", f"{SOURCE}: β = 4.5",
                       minimum=1e-3),
        Hyperparameter("delta", float, 0.0, "margin δ: the mean answer NLL beyond which the push fades",
                       f"{SOURCE}: δ = 0 (the paper's γ = β·δ)", minimum=0.0),
        Hyperparameter("forget_weight", float, 1.0, "weight of the forget term", f"{SOURCE}: γ = 1 (npo_coeff)",
                       minimum=0.0),
        Hyperparameter("retain_weight", float, 0.125, "weight of the retain CE (used only with retain data)",
                       f"{SOURCE}: α = 0.125", minimum=0.0),
    )

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        forget, p = batch["forget"], self.params
        mean_nll = sequence_nll(forward_logits(context.model, forget), forget.labels, reduction="mean")
        yield {"forget": p["forget_weight"] * simnpo_loss(mean_nll, p["beta"], p["delta"])}
        retain = batch.get("retain")
        if retain is not None:
            yield {"retain": p["retain_weight"] * mean_answer_ce(forward_logits(context.model, retain), retain.labels)}
