"""ICU's contrastive partners: for each target, its nearest non-target neighbour by cosine
similarity of sentence embeddings (arXiv 2407.20271, §3.2).

The authors embed with a sentence-transformers model (all-MiniLM-L6-v2: mean-pooled last hidden
states) and search with faiss. Here the default embedding is the model's own last hidden state,
mean-pooled over the tokens, with its adapter off: nothing extra to download or hold in memory.
A local embedding model folder (e.g. a saved all-MiniLM-L6-v2) can be named instead; it is
loaded with transformers' AutoModel and pooled the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from unlearn_studio.core.data.templates import collate, pad_token_id_for
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.building import building_models

EMBEDDING_BATCH = 32


def row_text(row: dict) -> str:
    """The text a row stands for: a text row's text, a question/answer row's question and answer."""
    return row["text"] if "text" in row else f"{row['question']} {row['answer']}"


def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states [B, T, D] over the attended positions, [B, D] in fp32."""
    weights = attention_mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1)


@torch.no_grad()
def own_embeddings(model, examples: Sequence[dict], pad_token_id: int, device,
                   check: Callable[[], None] | None = None) -> torch.Tensor:
    """Mean-pooled last hidden states of ``model`` (call it with the adapter off) for tokenized
    examples, [N, D] on the CPU. ``check`` is called before each batch (it raises to end the work)."""
    # The decoder alone returns the last hidden state without the language-model head's logits or
    # every layer's states (output_hidden_states), which on a real vocabulary cost more than training.
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    out = []
    for start in range(0, len(examples), EMBEDDING_BATCH):
        if check is not None:
            check()
        batch = collate(list(examples[start:start + EMBEDDING_BATCH]), pad_token_id)
        mask = batch["attention_mask"].to(device)
        inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": mask, "use_cache": False}
        if decoder is not None:
            hidden = decoder(**inputs).last_hidden_state
        else:
            hidden = model(**inputs, output_hidden_states=True).hidden_states[-1]
        out.append(mean_pooled(hidden, mask).cpu())
    return torch.cat(out)


@torch.no_grad()
def folder_embeddings(folder: str, texts: Sequence[str], device,
                      check: Callable[[], None] | None = None) -> torch.Tensor:
    """Mean-pooled last hidden states of the local embedding model in ``folder``, [N, D] on the CPU;
    ``check`` is called before each batch."""
    import transformers  # heavy; only needed for this option

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"The embedding model folder '{folder}' (method.params.embedding_model) does not exist",
                        "Give the folder of a local sentence-embedding model (config.json, weights, tokenizer), "
                        "or leave embedding_model empty to use the model's own hidden states.")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        with building_models():
            model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
        model = model.to(device).eval()
    except (OSError, ValueError) as exc:
        raise UserError(f"The embedding model in '{folder}' could not be loaded: {exc}",
                        "Give a folder that transformers' AutoModel loads (config.json, weights and tokenizer files), "
                        "or leave embedding_model empty.") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    out = []
    for start in range(0, len(texts), EMBEDDING_BATCH):
        if check is not None:
            check()
        encoded = tokenizer(list(texts[start:start + EMBEDDING_BATCH]), padding=True, truncation=True,
                            return_tensors="pt").to(device)
        hidden = model(**encoded).last_hidden_state
        out.append(mean_pooled(hidden, encoded["attention_mask"]).cpu())
    return torch.cat(out)


def nearest(targets: torch.Tensor, pool: torch.Tensor, excluded: torch.Tensor) -> list[int]:
    """For each target embedding [T, D], the index of the most cosine-similar pool embedding
    [P, D] that ``excluded`` [T, P] (bool) does not rule out."""
    similarity = F.normalize(targets.float(), dim=-1) @ F.normalize(pool.float(), dim=-1).T
    similarity = similarity.masked_fill(excluded, float("-inf"))
    if bool(torch.isinf(similarity).all(dim=1).any()):
        raise UserError("Every row of the retain data (ICU's neighbour pool) is also a forget target",
                        "Give retain data with other texts than the forget data.")
    return similarity.argmax(dim=1).tolist()


def choose_neighbours(context, embedding_model: str = "") -> list[int]:
    """Index into the retain rows of each forget row's nearest non-target neighbour. Retain rows
    whose text is one of the targets are never chosen."""
    forget, retain = context.data["forget"], context.data["retain"]
    forget_texts = [row_text(r) for r in forget.loaded.rows]
    pool_texts = [row_text(r) for r in retain.loaded.rows]
    targets = set(forget_texts)
    is_target = torch.tensor([text in targets for text in pool_texts])
    excluded = is_target.unsqueeze(0).expand(len(forget_texts), -1)
    if embedding_model:
        embed = folder_embeddings(embedding_model, forget_texts + pool_texts, context.device, context.check_stop)
    else:
        pad = pad_token_id_for(context.tokenizer)
        with context.original_model() as original:
            embed = own_embeddings(original, forget.examples + retain.examples, pad, context.device,
                                   context.check_stop)
    return nearest(embed[:len(forget_texts)], embed[len(forget_texts):], excluded)
