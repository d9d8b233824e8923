"""Representation Misdirection for Unlearning (RMU).

Li et al., The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning,
arXiv 2403.03218, §5, and their code (centerforaisafety/wmdp, rmu/unlearn.py). On forget data
the output activations of one decoder layer l are pushed toward a fixed random vector c·u; on
retain data they are held at the original model's activations:

    L = MSE(h_l(forget), c·u) + α · MSE(h_l(retain), h0_l(retain))

What we keep from the reference, and where we differ (and why):
- u is drawn like theirs, ``torch.rand`` normalised to unit length (a direction in the positive
  orthant), from a generator seeded with ``seed``, so a resumed run draws the same u.
- c: WMDP fixes c per model (6.5 for Zephyr-7B at layer 7); a fixed number does not carry over to
  other models, whose activation norms differ by orders of magnitude. Here c is relative:
  c = steering_scale · mean ‖h0_l‖ over the forget tokens, measured once in ``prepare`` with the
  adapter off (Adaptive RMU, arXiv 2408.06223, scales c by the activation norm for the same
  reason). Default 2.0: the target is clearly outside the cloud of ordinary activations but
  still reachable by a low-rank adapter within a few hundred steps.
- α: WMDP's code defaults to 100 (their Zephyr run used 1200 with its fixed c). With a relative
  c the two MSE terms scale alike with the activation norm, so α is comparable across models;
  we keep the code default, 100.
- layer: WMDP uses layer 7 of 32 (and trains layers 5-7). ``layer = -1`` scales that to the
  model's depth: round(7/32 · n_layers), e.g. 7 of 32, 1 of 4. Only LoRA weights in layers up to
  l receive gradient; a project can restrict ``lora.layers`` to them.
- The forget MSE is taken over the answer tokens (all tokens for raw text), as open-unlearning
  does for QA data: the prompt template's tokens also occur in the retain data, where the
  retain term holds them fixed. The retain MSE covers every non-padding token.
- Learning rate (the project's, not a parameter here): a LoRA adapter needs a far larger one
  than WMDP's 5e-5 for full fine-tuning; 5e-3 for 100 steps works on the built-in demo.
- Activations are the decoder layer's output (the residual stream after block l), caught with a
  forward hook; the frozen ones come from the same model with the adapter off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from unlearn_studio.core.data.templates import IGNORE_INDEX
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import Batch, DataRoles, Hyperparameter, MethodContext, UnlearningMethod
from unlearn_studio.core.methods.losses import rmu_forget_loss, rmu_retain_loss
from unlearn_studio.core.methods.registry import register
from unlearn_studio.core.model.lora_targets import find_decoder_layers

WMDP_LAYER, WMDP_DEPTH = 7, 32


def default_layer(n_layers: int) -> int:
    """WMDP's layer 7 of 32 scaled to ``n_layers`` (rounded half up), within the model."""
    return min(n_layers - 1, (2 * WMDP_LAYER * n_layers + WMDP_DEPTH) // (2 * WMDP_DEPTH))


@contextlib.contextmanager
def _capture_output(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the hidden states ``module`` outputs while the block runs (first tuple item, if
    the layer returns a tuple, as older transformers decoder layers do)."""
    caught: list[torch.Tensor] = []

    def hook(_module, _args, output):
        caught.append(output[0] if isinstance(output, tuple) else output)

    handle = module.register_forward_hook(hook)
    try:
        yield caught
    finally:
        handle.remove()


@register
class RMU(UnlearningMethod):
    name = "rmu"
    title = "RMU"
    summary = "Steer one layer's activations on forget data toward a fixed random vector; hold retain activations."
    paper = "Li et al., The WMDP Benchmark (RMU), arXiv 2403.03218"
    roles = DataRoles(required=("forget", "retain"))
    terms = ("forget", "retain")
    hyperparameters = (
        Hyperparameter("layer", int, -1, "decoder layer whose output is steered (0-based; -1 = layer 7 of 32 "
                       "scaled to the model's depth)", "WMDP (arXiv 2403.03218): layer 7 of Zephyr-7B's 32",
                       minimum=-1),
        Hyperparameter("steering_scale", float, 2.0, "target norm c as a multiple of the layer's mean "
                       "activation norm on forget data", "ours: WMDP's fixed c = 6.5 made relative "
                       "(cf. Adaptive RMU, arXiv 2408.06223)", minimum=0.0),
        Hyperparameter("alpha", float, 100.0, "weight of the retain MSE", "WMDP code default (rmu/unlearn.py); "
                       "their Zephyr run used 1200", minimum=0.0),
        Hyperparameter("seed", int, 0, "seed of the random direction u", "ours", minimum=0, advanced=True),
    )

    def __init__(self, params=None):
        super().__init__(params)
        self.control_vector: torch.Tensor | None = None  # c·u, set by prepare
        self.layer_index: int | None = None

    def _layer(self, context: MethodContext) -> torch.nn.Module:
        _, layers = find_decoder_layers(context.model)
        return layers[self.layer_index]

    def _activations(self, model: torch.nn.Module, layer: torch.nn.Module, batch: Batch) -> torch.Tensor:
        with _capture_output(layer) as caught:
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        return caught[0]

    def prepare(self, context: MethodContext, batches: dict[str, list[Batch]]) -> None:
        """Resolve the layer, measure the mean activation norm on forget data (adapter off) and
        fix the control vector c·u."""
        _, layers = find_decoder_layers(context.model)
        n_layers = len(layers)
        layer = self.params["layer"]
        if layer >= n_layers:
            raise UserError(f"'method.params.layer' of RMU is {layer}, but the model has {n_layers} layers "
                            f"(0-{n_layers - 1})", f"Choose a layer from 0 to {n_layers - 1}, or -1 for the default.")
        self.layer_index = default_layer(n_layers) if layer == -1 else layer
        forget = batches.get("forget") or []
        if not forget:
            raise ValueError("RMU.prepare needs at least one forget batch to measure activation norms")
        norm_sum, count, hidden = 0.0, 0, 0
        with context.original_model() as original:
            for batch in forget:
                batch = batch.to(context.device)
                activations = self._activations(original, layers[self.layer_index], batch)
                mask = batch.labels != IGNORE_INDEX
                norm_sum += float(activations.float().norm(dim=-1)[mask].sum())
                count += int(mask.sum())
                hidden = activations.shape[-1]
        mean_norm = norm_sum / max(count, 1)
        generator = torch.Generator().manual_seed(self.params["seed"])
        # fp32 named: a model loading on another thread changes torch's default dtype meanwhile
        direction = torch.rand(hidden, generator=generator, dtype=torch.float32)
        direction = direction / direction.norm()
        self.control_vector = (self.params["steering_scale"] * mean_norm * direction).to(context.device)

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        if self.control_vector is None:
            raise RuntimeError("RMU.prepare must run before loss_terms")
        layer = self._layer(context)
        forget, retain = batch["forget"], batch["retain"]
        yield {"forget": rmu_forget_loss(self._activations(context.model, layer, forget), self.control_vector,
                                         forget.labels != IGNORE_INDEX)}
        with context.original_model() as original:
            h0_retain = self._activations(original, layer, retain)
        yield {"retain": self.params["alpha"] * rmu_retain_loss(self._activations(context.model, layer, retain),
                                                                h0_retain, retain.attention_mask)}
