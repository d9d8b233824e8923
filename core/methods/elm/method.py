"""Erasure of Language Memory (ELM).

Gandikota, Feucht, Marks and Bau, Erasing Conceptual Knowledge from Language Models,
arXiv 2410.02760, and their code (rohitgandikota/erasing-llm, trainscripts/erase.py). The model
is trained to predict, on text about a concept C, what it would predict if the text had been
written by someone who knows nothing of C, while keeping its predictions elsewhere and staying
fluent. Three terms, each streamed by name:

- "erase": soft-label CE of pθ(x) against q_t = softmax(top_k(ℓ0 + η_t(ℓn − ℓe))), where ℓ0, ℓe,
  ℓn are the frozen model's log-probabilities (temperature T) on x, on an expert framing + x and
  on a novice framing + x (core/methods/elm/losses.py), η_t ramping from 1 to η along x.
- "retain": CE of pθ on retain text against p0's argmax tokens (with a "general" data set, or
  further retain sources such as QA rows in their own template, the weighted mean of that CE over
  the batches, weighted by each source's ``weight``, 1 when not given).
- "consistency": CE on "x + a confused redirection + a continuation" that p0 itself sampled
  under guidance +γ·(log p_novice − log p_expert), so the erased model still writes fluent text
  after the concept comes up.
The frozen model p0 is the same network with the adapter off; the phrasings are our own
(core/methods/elm/phrasings.py).

Where we differ from the authors' code, and why:
- The framing is inserted as tokens after the leading special tokens (BOS), so the last n tokens
  of the three inputs are identical and position t of x lines up exactly; the authors tokenize
  "framing + x" as one string, where the boundary tokens can merge differently.
- The three frozen passes run as ONE right-padded batch (the authors make three calls); right
  padding leaves every real token at its own position, so the numbers are those of three passes.
- Batches of any size: q_t, the η ramp and the losses are per row over the positions that
  predict x's tokens (the authors train one unpadded text per step).
- Consistency continuations are sampled ONCE per data set in ``prepare`` (adapter off, seeded,
  temperature 1) and cached on disk, keyed by a hash of the token ids of every prompt (data,
  tokenizer, phrasings, concept), the model and the parameters; the authors generate online or
  load a JSON file they made beforehand. Their length is fixed (``consistency_tokens``) instead of
  a random 100–300 tokens. The guidance passes see the framing followed by the whole context
  (x + redirection + what was sampled so far); the authors' guidance passes see the framing and
  the sampled tokens without x. The separator before the redirection is ". " only when x does not
  already end a sentence. The consistency CE covers every token after x (redirection included;
  the authors skip the first one).
  The cache lives in the user cache folder (``consistency_cache_dir``, e.g.
  ~/.cache/unlearn-studio/elm_consistency), beside the evaluation caches.
- A consistency row is cut to training.max_length like every sequence a step trains on (x loses
  tokens from its start, the redirection and continuation stay), so that max_length bounds a
  step's memory as the user expects; the authors' rows are as long as they come out.
- The erase target is kept as its top-k probabilities and token ids, not as a [B, T, V] tensor
  (the same loss; a real vocabulary would otherwise cost several logits-sized tensors).
- An optional "general" data set is retained too (the authors retain one corpus): on a small
  model, keeping only text near the concept lets everyday text drift.
- Frozen passes and sampling run in eval mode (no dropout), as the authors' do.
- LoRA layers: "4–7 of 32" is a fraction of depth, lora.layers = "0.125-0.25" (layers 4-7 of 32;
  layer 0 of a 4-layer model). The project file decides.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import torch

from unlearn_studio.core.data.templates import IGNORE_INDEX, _special_affixes, pad_token_id_for
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import (
    Batch,
    DataRoles,
    Hyperparameter,
    MethodContext,
    UnlearningMethod,
    forward_logits,
    role_batches,
)
from unlearn_studio.core.methods.elm.consistency import (
    CACHE_VERSION,
    SAMPLE_CHUNK,
    consistency_cache_dir,
    fit_to_length,
    load_cached,
    model_fingerprint,
    sample_guided,
    store_cached,
)
from unlearn_studio.core.methods.elm.losses import (
    erase_target,
    erase_target_top_k,
    hard_cross_entropy,
    soft_cross_entropy,
    sparse_soft_cross_entropy,
)
from unlearn_studio.core.methods.elm.passes import eval_mode, frozen_passes, right_padded, with_prefix
from unlearn_studio.core.methods.elm.phrasings import REDIRECTIONS, expert_prefixes, novice_prefixes
from unlearn_studio.core.methods.losses import mean_answer_ce
from unlearn_studio.core.methods.registry import register
from unlearn_studio.core.model.generate import generation_rows

PAPER = "ELM (arXiv 2410.02760)"
AUTHORS_CODE = "ELM authors' code (erasing-llm, trainscripts/erase.py)"


@register
class ELM(UnlearningMethod):
    name = "elm"
    title = "ELM"
    summary = ("Erase a concept: on its text, predict what a novice would write instead of an expert; "
               "keep retain text and fluency.")
    paper = "Gandikota et al., Erasing Conceptual Knowledge from Language Models (ELM), arXiv 2410.02760"
    # Several retain sources ([data.retain.also.<name>]): e.g. text near the concept and the QA rows
    # the model must keep answering, each in its own template and weight.
    roles = DataRoles(required=("forget", "retain"), optional=("general",), several=("retain",))
    terms = ("erase", "retain", "consistency")
    hyperparameters = (
        Hyperparameter("concept", str, "", "the concept to erase, as the framings name it "
                       "(e.g. \"Harry Potter, Hogwarts, wizardry\")",
                       f"{PAPER}: a short description of the concept, e.g. its keywords"),
        Hyperparameter("eta", float, 500.0, "erase strength η: the target's shift toward the novice "
                       "ramps from 1 to η along each text", f"{PAPER}: η = 500 (the {AUTHORS_CODE} "
                       "defaults to 1000)", minimum=0.0),
        Hyperparameter("temperature", float, 1.2, "temperature T of the frozen log-probabilities in "
                       "the erase target", f"{AUTHORS_CODE}: --temperature 1.2", minimum=0.01),
        Hyperparameter("top_k", int, 50, "tokens kept in each erase target (0 = all)",
                       f"{AUTHORS_CODE}: --topk 50", minimum=0),
        Hyperparameter("erase_weight", float, 1.0, "weight λ1 of the erase loss",
                       f"{AUTHORS_CODE}: --erase_loss_scale 1", minimum=0.0),
        Hyperparameter("retain_weight", float, 1.0, "weight λ2 of the retain loss",
                       f"{AUTHORS_CODE}: --retain_loss_scale 1", minimum=0.0),
        Hyperparameter("consistency_weight", float, 1.0, "weight λ3 of the consistency loss "
                       "(0 skips sampling the continuations)", f"{AUTHORS_CODE}: --consistence_loss_scale 1",
                       minimum=0.0),
        Hyperparameter("guidance", float, 3.0, "guidance γ toward the novice when sampling the "
                       "consistency continuations", f"{AUTHORS_CODE}: gamma = 3", minimum=0.0),
        Hyperparameter("consistency_tokens", int, 100, "tokens sampled per consistency continuation",
                       f"ours: the lower end of the 100-300 tokens the {AUTHORS_CODE} draws", minimum=1),
        Hyperparameter("seed", int, 0, "seed of the framing and redirection choices and of the sampling",
                       "ours", minimum=0, advanced=True),
    )

    def __init__(self, params=None):
        super().__init__(params)
        self.cache_dir = consistency_cache_dir()
        self.lead = 0  # special tokens before the text, where framings are inserted
        self.pad_id = 0
        self.expert_ids: list[list[int]] = []
        self.novice_ids: list[list[int]] = []
        self.consistency: list[dict[str, list[int] | int]] = []  # per forget row
        self.context_limit: int | None = None
        self.max_length: int | None = None  # the run's training.max_length

    @classmethod
    def check_params(cls, params):
        checked = super().check_params(params)
        if not checked["concept"].strip():
            raise UserError("ELM needs the concept to erase, but 'method.params.concept' is empty",
                            "Set method.params.concept to a short description of it, e.g. "
                            "concept = \"Harry Potter, Hogwarts, wizardry\".")
        return checked

    # ---- preparation ---------------------------------------------------------------------------

    def prepare(self, context: MethodContext, batches: dict[str, list[Batch]]) -> None:
        """Tokenize the framings; sample (or load) the consistency continuations."""
        tokenizer, concept = context.tokenizer, self.params["concept"].strip()
        self.lead = len(_special_affixes(tokenizer)[0])
        self.pad_id = pad_token_id_for(tokenizer)
        self.expert_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in expert_prefixes(concept)]
        self.novice_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in novice_prefixes(concept)]
        config = getattr(context.model, "config", None)
        self.context_limit = getattr(config, "max_position_embeddings", None)
        self.max_length = context.max_length
        self._check_room(context)
        if self.params["consistency_weight"] > 0:
            self.consistency = self._consistency_rows(context)

    def _check_room(self, context: MethodContext) -> None:
        """The longest forget text with the longest framing must fit the model's context."""
        data = context.data.get("forget")
        if not self.context_limit or data is None or not data.examples:
            return
        framing = max(len(ids) for ids in self.expert_ids + self.novice_ids)
        longest = max(len(example["input_ids"]) for example in data.examples)
        if longest + framing > self.context_limit:
            raise UserError(f"ELM puts a framing of up to {framing} tokens before each forget text, and the longest "
                            f"text has {longest} tokens: more than the model's context of {self.context_limit}",
                            f"Set training.max_length to at most {self.context_limit - framing}, or use a shorter "
                            "method.params.concept.")

    def _rng(self, *parts) -> random.Random:
        """A generator for one choice, seeded by the seed and ``parts`` (never by global state)."""
        return random.Random("/".join(map(str, (self.params["seed"], *parts))))

    def _framings(self, *parts) -> tuple[list[int], list[int]]:
        rng = self._rng("framing", *parts)
        return rng.choice(self.expert_ids), rng.choice(self.novice_ids)

    def _consistency_prompts(self, context: MethodContext) -> list[dict]:
        """Per forget row: the text x (without EOS) + a redirection, with the framings to guide by."""
        data = context.data.get("forget")
        if data is None or not data.examples:
            raise ValueError("ELM.prepare needs the tokenized forget data in context.data['forget']")
        tokenizer = context.tokenizer
        eos = tokenizer.eos_token_id
        prompts = []
        for index, example in enumerate(data.examples):
            text_ids = list(example["input_ids"])
            if eos is not None and len(text_ids) > 1 and text_ids[-1] == eos:
                text_ids = text_ids[:-1]
            text = tokenizer.decode(text_ids, skip_special_tokens=True).rstrip()
            separator = " " if text.endswith((".", "!", "?")) else ". "
            redirection = self._rng("redirection", index).choice(REDIRECTIONS)
            turn = tokenizer(separator + redirection, add_special_tokens=False)["input_ids"]
            expert, novice = self._framings("consistency", index)
            prompt = text_ids + list(turn)
            prompts.append({"prompt": prompt, "n_text": len(text_ids),
                            "expert": with_prefix(prompt, expert, self.lead),
                            "novice": with_prefix(prompt, novice, self.lead)})
        return prompts

    def _consistency_rows(self, context: MethodContext) -> list[dict]:
        prompts = self._consistency_prompts(context)
        longest = max(max(len(p["expert"]), len(p["novice"])) for p in prompts)
        new_tokens = self.params["consistency_tokens"]
        if self.context_limit:
            new_tokens = max(1, min(new_tokens, self.context_limit - longest))
        with context.original_model() as original:
            fingerprint = model_fingerprint(original)
        key_text = json.dumps({
            "version": CACHE_VERSION, "model": fingerprint,
            "prompts": [[p["prompt"], p["expert"], p["novice"]] for p in prompts],
            "guidance": self.params["guidance"], "tokens": new_tokens, "seed": self.params["seed"],
            "eos": context.tokenizer.eos_token_id,
        }, sort_keys=True)
        key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
        path = Path(self.cache_dir) / f"{key}.json"
        continuations = load_cached(path, len(prompts))
        if continuations is None:
            context.log("info", f"ELM: sampling {len(prompts)} consistency continuations "
                                f"({new_tokens} tokens, guidance {self.params['guidance']:g})")
            rows = generation_rows(context.batch_size, 3 * SAMPLE_CHUNK, max_length=context.max_length,
                                   row_tokens=longest + new_tokens)
            with context.original_model() as original, eval_mode(original):
                continuations = sample_guided(
                    original, [p["prompt"] for p in prompts], [p["expert"] for p in prompts],
                    [p["novice"] for p in prompts], guidance=self.params["guidance"], max_new_tokens=new_tokens,
                    eos_token_id=context.tokenizer.eos_token_id, pad_id=self.pad_id,
                    seeds=[self.params["seed"] * 1_000_003 + i for i in range(len(prompts))],
                    chunk_size=max(1, rows // 3), check=context.check_stop)  # three rows per prompt: plain, expert, novice
            store_cached(path, continuations, context.log)
        else:
            context.log("info", f"ELM: consistency continuations from the cache {path}")
        return [{"ids": p["prompt"] + c, "n_text": p["n_text"]} for p, c in zip(prompts, continuations, strict=True)]

    # ---- the step ------------------------------------------------------------------------------

    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        """One group per trained pass (erase; retain, and general when given; consistency), each
        backpropagated before the next. A term whose weight is 0 is a constant 0."""
        if not self.expert_ids:
            raise RuntimeError("ELM.prepare must run before loss_terms")
        p = self.params
        forget = batch["forget"]
        zero = torch.zeros((), device=forget.input_ids.device)
        yield {"erase": p["erase_weight"] * self.erase_loss(context, forget) if p["erase_weight"] > 0 else zero}
        kept = role_batches(context, batch, "retain") + role_batches(context, batch, "general")
        total = sum(weight for _, weight in kept)
        for retain, weight in kept if p["retain_weight"] > 0 else ():
            yield {"retain": p["retain_weight"] * weight / total * self.retain_loss(context, retain)}
        if p["retain_weight"] == 0:
            yield {"retain": zero}
        yield {"consistency": p["consistency_weight"] * self.consistency_loss(context, forget)
               if p["consistency_weight"] > 0 else zero}

    def erase_loss(self, context: MethodContext, forget: Batch) -> torch.Tensor:
        """Soft-label CE of pθ(x) against q_t, which the three frozen passes give (sparse when
        top_k keeps fewer tokens than the vocabulary, dense otherwise)."""
        lengths = forget.attention_mask.sum(dim=1).tolist()
        rows = [forget.input_ids[b, :n].tolist() for b, n in enumerate(lengths)]
        indices = forget.extra.get("index", torch.arange(len(rows))).tolist()
        framings = [self._framings("erase", context.step, index) for index in indices]
        with context.original_model() as original, eval_mode(original):
            passes = frozen_passes(original, rows, [e for e, _ in framings], [n for _, n in framings],
                                   lead=self.lead, pad_id=self.pad_id, width=forget.input_ids.shape[1])
        mask = torch.zeros_like(forget.labels, dtype=torch.bool)
        mask[:, :-1] = forget.labels[:, 1:] != IGNORE_INDEX  # position t predicts token t+1
        settings = {"eta": self.params["eta"], "temperature": self.params["temperature"]}
        top_k = self.params["top_k"]
        if 0 < top_k < passes[0].shape[-1]:
            target = erase_target_top_k(*passes, mask, top_k=top_k, **settings)
            del passes  # the frozen logits go before the trained pass
            return sparse_soft_cross_entropy(forward_logits(context.model, forget), *target, mask)
        q = erase_target(*passes, mask, top_k=top_k, **settings)
        del passes
        return soft_cross_entropy(forward_logits(context.model, forget), q, mask)

    def retain_loss(self, context: MethodContext, retain: Batch) -> torch.Tensor:
        """CE against the frozen model's argmax at every position that predicts a real token."""
        with context.original_model() as original, eval_mode(original):
            targets = forward_logits(original, retain).argmax(dim=-1)
        logits = forward_logits(context.model, retain)
        return hard_cross_entropy(logits[:, :-1], targets[:, :-1], retain.attention_mask[:, 1:])

    def consistency_batch(self, forget: Batch) -> Batch:
        """The cached "x + redirection + continuation" of each forget row; labels after x."""
        if "index" not in forget.extra:
            raise ValueError("ELM's consistency loss needs the forget rows' indices (batch.extra['index'])")
        limit = min(n for n in (self.context_limit, self.max_length, 1 << 30) if n)
        sequences, labels = [], []
        for index in forget.extra["index"].tolist():
            row = self.consistency[index]
            ids, n_text = fit_to_length(row["ids"], row["n_text"], self.lead, limit)
            sequences.append(ids)
            labels.append([IGNORE_INDEX] * n_text + ids[n_text:])
        width = max(len(s) for s in sequences)
        ids, mask = right_padded(sequences, width, self.pad_id)
        label_ids = torch.full_like(ids, IGNORE_INDEX)
        for i, row_labels in enumerate(labels):
            label_ids[i, :len(row_labels)] = torch.as_tensor(row_labels[:width], dtype=torch.long)
        return Batch(ids, mask, label_ids).to(forget.input_ids.device)

    def consistency_loss(self, context: MethodContext, forget: Batch) -> torch.Tensor:
        batch = self.consistency_batch(forget)
        return mean_answer_ce(forward_logits(context.model, batch), batch.labels)
