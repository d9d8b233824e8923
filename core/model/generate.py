"""Batched text generation: left padding, greedy or sampled decoding, a seed, max_new_tokens.

Prompts are padded on the left so that every row's next token comes right after its own prompt;
the tokenizer's own padding side is never changed. Generated ids are cut at the first EOS.
Works on any causal LM with ``generate`` (a PeftModel generates with its adapter on).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Sequence

import torch

from unlearn_studio.core.data.templates import pad_token_id_for

DEFAULT_BATCH = 64
# A sequence being generated holds its KV cache, a small share of what a trained sequence holds
# (every layer's activations for the backward): 8 generated rows per trained row keep generation
# inside a training run below a training step's memory (Llama-7B: 8 x 0.5 MB of bf16 cache per
# token against about 9 MB of activations), so that a smaller training batch shrinks it too.
GENERATED_ROWS_PER_TRAINED_ROW = 8


def generation_rows(training_batch: int | None, default: int = DEFAULT_BATCH, *, max_length: int | None = None,
                    row_tokens: int | None = None) -> int:
    """Rows to generate at once during a run whose training batch is ``training_batch``: 8 per
    trained row, fewer when a generated row (prompt and new tokens, ``row_tokens``) is longer than
    a trained one (``max_length``), so that the cache holds as many tokens either way."""
    if not training_batch:
        return default
    rows = GENERATED_ROWS_PER_TRAINED_ROW * training_batch
    if max_length and row_tokens and row_tokens > max_length:
        rows = rows * max_length // row_tokens
    return max(1, rows)


@functools.cache
def cache_argument() -> str:
    """The forward argument that takes a KV cache: transformers renamed ``past_key_values`` to
    ``cache`` during 5.x and drops the old name in 5.40; the installed version's own name is used."""
    from transformers import LlamaForCausalLM  # looked up on first use: importing it costs seconds

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


def with_cache(cache) -> dict:
    """Keyword arguments that hand a forward pass its KV cache (None: start one)."""
    return {cache_argument(): cache, "use_cache": True}


def cache_of(output):
    """The KV cache a forward pass returned."""
    return getattr(output, cache_argument())


def model_device(model) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed torch's RNGs inside the block and restore them afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def generate_ids(
    model,
    prompt_ids: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    eos_token_id: int | None,
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
) -> list[list[int]]:
    """New token ids for each prompt (left-padded batches), cut at the first EOS."""
    if any(len(ids) == 0 for ids in prompt_ids):
        raise ValueError("every prompt needs at least one token (an empty prompt has nothing to continue)")
    device = model_device(model)
    options = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
               "pad_token_id": pad_token_id, "eos_token_id": eos_token_id}
    if do_sample:
        options.update(temperature=temperature, top_p=top_p)
    else:
        # Greedy: neutralise sampling settings a model's generation_config may carry.
        options.update(temperature=None, top_p=None, top_k=None)
    results: list[list[int]] = []
    with _seeded(seed, device):
        for start in range(0, len(prompt_ids), batch_size):
            chunk = prompt_ids[start:start + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, ids in enumerate(chunk):
                input_ids[i, width - len(ids):] = torch.as_tensor(list(ids), dtype=torch.long)
                attention[i, width - len(ids):] = 1
            out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **options)
            for row in out[:, width:].tolist():
                if eos_token_id is not None and eos_token_id in row:
                    row = row[:row.index(eos_token_id)]
                results.append(row)
    return results


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    add_special_tokens: bool = True,
) -> list[str]:
    """Completions of ``prompts`` (decoded without special tokens, stripped of outer whitespace).

    Greedy by default; with ``do_sample`` the same seed gives the same samples. Set
    ``add_special_tokens=False`` for prompts that already hold them (chat templates).
    """
    encoded = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    new_ids = generate_ids(
        model, encoded, pad_token_id=pad_token_id_for(tokenizer), eos_token_id=tokenizer.eos_token_id,
        max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p,
        seed=seed, batch_size=batch_size,
    )
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new_ids]
