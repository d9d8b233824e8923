"""Ext-Sub: train an expert and an anti-expert LoRA, then subtract the anti-expert's deficiency.

Hu et al., "Separate the Wheat from the Chaff: Model Deficiency Unlearning via Parameter-Efficient
Module Operation", AAAI 2024, arXiv 2308.08090; code github.com/HITsz-TMG/Ext-Sub (ext_sub.py).

A recipe in three stages, one project, declared here and executed by the runner
(core/run/staged_run.py): (1) the expert, plain LoRA SFT (core/methods/sft.py) on the "expert"
data, (2) the anti-expert, the same SFT on the "anti-expert" data, (3) Ext-Sub of the two
adapters (core/model/adapters.py). Stages 1 and 2 are ordinary recorded runs of method "sft" in
``<run>/stages/``, so their curves, checkpoints and evaluations are kept, and the run itself
holds the combined adapter in ``<run>/adapter`` and ``stages.json`` (what each stage was and
measured). The run's events carry its own id: the two trainings appear as one curve of
``training.max_steps``-sized parts with terms "expert" and "anti-expert", and the expert's own
evaluation is logged beside the result.

Deviations from the authors' code, on purpose:
- The result is stored as an exact LoRA of rank r_expert + r_anti (A' = [A+; A-]) instead of a
  full-rank one with A = I, which needs square modules and ~4 GB for a 7B model.
- Each adapter's scaling is folded into its B before the arithmetic, so adapters with different
  ranks or alphas combine correctly (their code assumes equal scalings and asserts only equal output
  sizes).
- Zero rows and opposite rows (no shared direction) get plain subtraction instead of NaN.
- Adapters are read and written as safetensors; "negation" (−λW) is offered beside "subtraction"
  and "addition".
- The training recipe is this app's SFT: answer tokens + EOS with the "user-assistant" template
  (the paper's "<|user|>\\n…\\n<|assistant|>\\n"), AdamW and a linear schedule instead of DeepSpeed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from unlearn_studio.core.methods.base import (
    Batch,
    Combine,
    DataRoles,
    Hyperparameter,
    MethodContext,
    TrainWith,
    UnlearningMethod,
)
from unlearn_studio.core.methods.registry import register
from unlearn_studio.core.model.adapters import OPERATIONS, combine_adapters

ROLES = ("expert", "anti-expert")  # the data role each training stage learns, in order


@register
class ExtSub(UnlearningMethod):
    name = "ext_sub"
    title = "Ext-Sub"
    summary = ("Train an expert and an anti-expert LoRA, then remove from the expert only what the "
               "anti-expert does not share with it.")
    paper = "Hu et al., Separate the Wheat from the Chaff (Ext-Sub), AAAI 2024, arXiv 2308.08090"
    roles = DataRoles(required=ROLES)
    terms = ROLES
    stages = (
        # Only the expert is evaluated on its own (the comparison the recipe reports); the
        # anti-expert's evaluation would cost as much and decide nothing.
        TrainWith("expert", "sft", data="expert", as_role="expert", evaluate=True),
        TrainWith("anti-expert", "sft", data="anti-expert", as_role="expert"),
        Combine("combine", inputs=ROLES),
    )
    # Rows of the "the expert alone vs Ext-Sub" lines logged at the end.
    stage_metrics = (("truthfulness/accuracy", "truthfulness"), ("general/perplexity", "general perplexity"),
                     ("retain/value_acc", "retain: value accuracy"), ("fluency/rep_4", "repetition (rep-4)"))
    hyperparameters = (
        Hyperparameter("alpha", float, 1.0, "strength λ of the anti-expert's deficiency part that is removed",
                       "Ext-Sub paper (arXiv 2308.08090), §3 and its ext_sub.py: λ = 1", minimum=0.0),
        Hyperparameter("op", str, "ext-sub", "how the two adapters are combined",
                       "Ext-Sub paper: ext-sub; subtraction and addition are its baselines", choices=OPERATIONS),
    )

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> dict[str, torch.Tensor]:
        raise RuntimeError("Ext-Sub trains in stages (see ExtSub.stages); it has no loss of its own")

    def combine(self, adapters: dict[str, Path], out: Path) -> Path:
        """Ext-Sub (or the chosen operation) of the expert and the anti-expert into ``out``, the run's
        own adapter folder (written again when a run that stopped before it is resumed)."""
        return combine_adapters(adapters["expert"], adapters["anti-expert"], out, op=self.params["op"],
                                alpha=self.params["alpha"], overwrite=True)
