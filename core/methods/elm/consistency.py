"""ELM's consistency data: per forget text, "x + a confused redirection + a continuation" that the
frozen model samples under guidance toward the novice, once per data set, cached on disk (see the
method's docstring for how this differs from the authors' code)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from unlearn_studio.core.cache import cache_root, content_digest
from unlearn_studio.core.methods.elm.losses import guided_scores
from unlearn_studio.core.model.generate import cache_of, model_device, with_cache

CACHE_VERSION = 1  # bump when the way continuations are sampled changes
SAMPLE_CHUNK = 32  # prompts per sampling batch (three rows each) when the run's batch size is unknown


def consistency_cache_dir() -> Path:
    """Where sampled consistency continuations are kept: beside the evaluation caches, in the
    user cache folder (e.g. ~/.cache/unlearn-studio/elm_consistency on Linux)."""
    return cache_root() / "elm_consistency"


def fit_to_length(ids: Sequence[int], n_text: int, lead: int, limit: int) -> tuple[list[int], int]:
    """A consistency row ("x + redirection + continuation", x being its first ``n_text`` tokens)
    cut to ``limit`` tokens, as every sequence a step trains on is cut to training.max_length:
    x loses tokens from its start (after the ``lead`` special tokens, keeping at least one), so
    that the trained part after x stays whole; only if that alone is too long is its end cut.
    Returns the ids and the new length of x."""
    ids = list(ids)
    drop = min(max(0, len(ids) - limit), max(0, n_text - lead - 1))
    ids = ids[:lead] + ids[lead + drop:]
    return ids[:limit], n_text - drop


@torch.no_grad()
def sample_guided(model: torch.nn.Module, plain: Sequence[Sequence[int]], expert: Sequence[Sequence[int]],
                  novice: Sequence[Sequence[int]], *, guidance: float, max_new_tokens: int,
                  eos_token_id: int | None, pad_id: int, seeds: Sequence[int],
                  chunk_size: int = SAMPLE_CHUNK, check: Callable[[], None] | None = None) -> list[list[int]]:
    """Continuations of ``plain[b]`` sampled from softmax(log p + γ·(log p_novice − log p_expert)),
    where p_expert and p_novice see ``expert[b]`` and ``novice[b]`` (the same text with a framing)
    followed by the same sampled tokens. The three rows run as one left-padded batch with a KV
    cache; each row draws from its own generator (``seeds[b]``), so a row's continuation does not
    depend on the rows beside it. Cut at EOS. ``check`` is called before every new token (it raises to
    end the sampling: a cancel)."""
    out: list[list[int]] = []
    for start in range(0, len(plain), chunk_size):
        part = slice(start, start + chunk_size)
        out += _sample_chunk(model, [*plain[part], *expert[part], *novice[part]], list(seeds[part]),
                             guidance, max_new_tokens, eos_token_id, pad_id, check)
    return out


def _sample_chunk(model, sequences, seeds, guidance, max_new_tokens, eos_token_id, pad_id, check) -> list[list[int]]:
    n, device = len(seeds), model_device(model)
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(sequences):
        ids[i, width - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, width - len(seq):] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    results: list[list[int]] = [[] for _ in range(n)]
    finished = [False] * n
    # Only the last position's logits are sampled from; the others would cost [rows, T, V].
    output = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                   position_ids=positions.to(device), logits_to_keep=1, **with_cache(None))
    for step in range(max_new_tokens):
        if check is not None:
            check()
        last = output.logits[:, -1]
        probs = torch.softmax(guided_scores(last[:n], last[n:2 * n], last[2 * n:], guidance), dim=-1).cpu()
        tokens = []
        for b in range(n):
            token = pad_id if finished[b] else int(torch.multinomial(probs[b], 1, generator=generators[b]))
            if not finished[b]:
                if token == eos_token_id:
                    finished[b] = True
                else:
                    results[b].append(token)
            tokens.append(token)
        if all(finished) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones((len(sequences), 1), dtype=torch.long)], dim=1)
        positions = positions[:, -1:] + 1
        output = model(input_ids=torch.tensor(tokens * 3).unsqueeze(1).to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), **with_cache(cache_of(output)))
    return results


def model_fingerprint(model: torch.nn.Module) -> dict[str, str]:
    """What identifies the base weights for the cache: the folder's content digest when the
    model came from a folder, and a hash of a slice of its input embeddings (cheap, and it tells
    apart models that share a name)."""
    name = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "")
    folder = content_digest(name) if name and Path(name).is_dir() else ""
    weights = model.get_input_embeddings().weight.detach().flatten()
    sample = torch.cat([weights[:4096], weights[-4096:]]).float().cpu().numpy().tobytes()
    return {"name": name, "folder": folder, "embeddings": hashlib.sha256(sample).hexdigest()}


def load_cached(path: Path, count: int) -> list[list[int]] | None:
    """The ``count`` continuations kept at ``path``, or None (missing or damaged: sampled again)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["continuations"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rows if isinstance(rows, list) and len(rows) == count else None


def store_cached(path: Path, continuations: list[list[int]], log: Callable[[str, str], None]) -> None:
    """Write atomically (temporary file, then rename); a cache that cannot be written only costs time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{id(continuations)}.partial")
        partial.write_text(json.dumps({"continuations": continuations}), encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        log("warning", f"ELM: could not cache the consistency continuations in {path}: {exc}")
