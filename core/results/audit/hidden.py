"""Hidden states of a model at two positions of a question and its answer, per layer.

Each row is passed once, teacher-forced (the prompt in the set's template, then the answer), and
the output of the embeddings and of every decoder layer is read (forward hooks, so the states are
the layers' own outputs, before the final norm, on any architecture) at:

- the last prompt token: what the model holds about the question before it answers (the probes);
- the token before the value: where the answer is about to state it (the logit lens), with the
  value's first token as the model sees it there. Rows whose answer does not contain the value,
  or a tokenizer without character offsets, have no such position.

A causal model's state at a position depends on the tokens up to it only, so each row is passed
only as far as the last position read, and through the model's body without its output head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_studio.core.data.templates import pad_token_id_for
from unlearn_studio.core.evaluation.passes import qa_pair
from unlearn_studio.core.model.generate import model_device
from unlearn_studio.core.model.lora_targets import find_decoder_layers

BATCH = 64


@dataclass
class States:
    """``prompt[i, l]``: row i's state after layer l (0: the embeddings) at its last prompt token;
    ``value[i, l]`` at the token before its value (rows in ``valued``), ``value_ids`` the value's
    first token id of those rows."""

    prompt: torch.Tensor  # [rows, layers + 1, hidden]
    value: torch.Tensor  # [valued rows, layers + 1, hidden]
    valued: list[int]
    value_ids: list[int]


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    prompt_last: int
    value_at: int | None  # index of the value's first token


def encode(row: dict, template: str, tokenizer) -> Encoded:
    prompt, target, special = qa_pair(row["question"], row["answer"], template, tokenizer, row.get("history"))
    n_prompt = len(tokenizer(prompt, add_special_tokens=special)["input_ids"])
    text = prompt + target
    value = str(row.get("value") or "")
    found = target.lower().find(value.lower()) if value else -1
    if found < 0 or not getattr(tokenizer, "is_fast", False):
        return Encoded(list(tokenizer(text, add_special_tokens=special)["input_ids"]), n_prompt - 1, None)
    encoded = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    char = len(prompt) + found
    value_at = next((i for i, (start, end) in enumerate(encoded["offset_mapping"])
                     if i >= n_prompt and start <= char < end), None)
    return Encoded(list(encoded["input_ids"]), n_prompt - 1, value_at)


def _layer_modules(model) -> list[torch.nn.Module]:
    return [model.get_input_embeddings(), *find_decoder_layers(model)[1]]


@torch.no_grad()
def hidden_states(model, tokenizer, rows: list[dict], template: str, advance=None) -> States:
    """The states of ``rows`` (see the module docstring); ``advance(n)`` after every batch."""
    encoded = [encode(row, template, tokenizer) for row in rows]
    modules = _layer_modules(model)
    picked: list[torch.Tensor | None] = [None] * len(modules)
    where: dict[str, torch.Tensor] = {}  # the batch's (row, position) pairs to keep, set before each pass

    def keep(index):
        def hook(_module, _inputs, output):
            states = output[0] if isinstance(output, tuple) else output
            # Only the positions read are kept (a whole batch of a large model's states is gigabytes).
            picked[index] = states[where["rows"], where["positions"]].float().cpu()
        return hook

    handles = [module.register_forward_hook(keep(i)) for i, module in enumerate(modules)]
    prompt_states, value_states, valued, value_ids = [], [], [], []
    pad, device = pad_token_id_for(tokenizer), model_device(model)
    body = model.base_model  # transformers' body of the model (LlamaModel, GPT2Model): no output head
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(encoded), BATCH):
            chunk = encoded[start:start + BATCH]
            lens = [i for i, e in enumerate(chunk) if e.value_at is not None and e.value_at > 0]
            ends = [max(e.prompt_last + 1, e.value_at if i in lens else 0) for i, e in enumerate(chunk)]
            input_ids = torch.full((len(chunk), max(ends)), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for i, (e, end) in enumerate(zip(chunk, ends, strict=True)):
                input_ids[i, :end] = torch.as_tensor(e.ids[:end])
                attention[i, :end] = 1
            rows_read = list(range(len(chunk))) + lens
            positions = [e.prompt_last for e in chunk] + [chunk[i].value_at - 1 for i in lens]
            where.update(rows=torch.as_tensor(rows_read, device=device), positions=torch.as_tensor(positions, device=device))
            body(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False)
            states = torch.stack(picked, dim=1)  # [read positions, layers + 1, hidden]
            prompt_states.append(states[:len(chunk)])
            value_states.append(states[len(chunk):])
            valued += [start + i for i in lens]
            value_ids += [chunk[i].ids[chunk[i].value_at] for i in lens]
            if advance is not None:
                advance(len(chunk))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return States(torch.cat(prompt_states), torch.cat(value_states), valued, value_ids)
