"""The three models an audit compares, on as few loaded weights as it can.

The run's base model is loaded once. It carries two LoRA adapters: the run's ("unlearned", as
saved) and a fresh one for the relearning attack ("audit_relearn", drawn from the audit's seed;
its B matrices start at zero, so until it trains it changes nothing). The original model is the
base with only the relearning adapter active, the unlearned model the base with both: the run's
adapter is kept, never merged, and never trained. The reference model (the project's model
trained without the forget data) is the only second model loaded, with a fresh relearning adapter
of its own, and only when the project names one.

``use(name)`` activates a model and returns it, its relearning adapter left out (it changes nothing
until trained, and every active adapter costs each layer's forward three more calls);
``use(name, relearning=True)`` includes it. ``reset()`` puts the relearning adapters back to their
first weights, so that every attack starts from the models as they were.
"""

from __future__ import annotations

from pathlib import Path

import torch

from unlearn_studio.core.model.loading import add_adapter, attach_lora, load_model
from unlearn_studio.core.model.lora_targets import find_decoder_layers

ORIGINAL, UNLEARNED, REFERENCE = "original", "unlearned", "reference"
MODEL_WORDS = {ORIGINAL: "original (before unlearning)", UNLEARNED: "unlearned (the run's adapter)",
               REFERENCE: "reference (never saw the forget data)"}
RUN_ADAPTER, RELEARN_ADAPTER = "unlearned", "audit_relearn"


class AuditModels:
    """The original, unlearned and (optionally) reference model, and their relearning adapters."""

    def __init__(self, config, adapter_dir: str | Path, *, reference_dir: str | Path | None, rank: int, seed: int):
        model = config.model
        options = {"dtype": model.dtype, "device": model.device, "trust_remote_code": model.trust_remote_code}
        loaded = load_model(config.resolve_model_path(), allow_network=model.allow_network, **options)
        self.tokenizer = loaded.tokenizer
        self.base = self._with_relearning(loaded.model, rank, seed)
        add_adapter(self.base, adapter_dir, adapter_name=RUN_ADAPTER)
        self.reference = None
        if reference_dir is not None:
            reference = load_model(reference_dir, **options)
            self.reference = self._with_relearning(reference.model, rank, seed)
        self._first = {id(m): self._relearning_weights(m) for m in self._peft_models()}

    @staticmethod
    def _with_relearning(model, rank: int, seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return attach_lora(model, r=rank, alpha=2 * rank, roles="auto", adapter_name=RELEARN_ADAPTER)

    def _peft_models(self) -> list:
        return [self.base] + ([self.reference] if self.reference is not None else [])

    @staticmethod
    def _relearning_weights(model) -> dict[str, torch.Tensor]:
        return {name: param.detach().clone() for name, param in model.named_parameters()
                if f".{RELEARN_ADAPTER}." in name}

    @property
    def layer_count(self) -> int:
        return len(find_decoder_layers(self.base.base_model.model)[1])

    @property
    def names(self) -> tuple[str, ...]:
        return (ORIGINAL, UNLEARNED) + ((REFERENCE,) if self.reference is not None else ())

    def use(self, name: str, *, relearning: bool = False):
        """Model ``name`` with the adapters it is made of active (with ``relearning``, its relearning
        adapter too, which alone trains).

        Returned is the transformers model inside the PeftModel (its LoRA layers in place): a
        PeftModel looks up one active adapter by name, and here two may be active."""
        model = self.reference if name == REFERENCE else self.base
        active = [RUN_ADAPTER] if name == UNLEARNED else []
        model.base_model.set_adapter(active + [RELEARN_ADAPTER] if relearning else active)
        for param_name, param in model.named_parameters():
            param.requires_grad_(f".{RELEARN_ADAPTER}." in param_name)
        return model.base_model.model

    def relearning_parameters(self, model) -> list[torch.nn.Parameter]:
        return [param for name, param in model.named_parameters() if f".{RELEARN_ADAPTER}." in name]

    @torch.no_grad()
    def reset(self) -> None:
        """Every relearning adapter back to its first weights (the models as they were)."""
        for model in self._peft_models():
            first = self._first[id(model)]
            for name, param in model.named_parameters():
                if name in first:
                    param.copy_(first[name])
