"""The model passes the evaluation makes: teacher-forced scoring and greedy answers, in batches.

Tokenization follows core/demo/report.py, so that both give the same numbers: the prompt and
prompt + target are each tokenized with the tokenizer's own special tokens (BOS), the scored
tokens are the target's after the prompt's, EOS is not scored; the prompt is the template's
generation prompt without its trailing space, which goes with the target (" Paris").
After every batch the pass reports its progress and lets a cancel end the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from unlearn_studio.core.data.templates import pad_token_id_for, render
from unlearn_studio.core.evaluation.progress import ProgressTracker
from unlearn_studio.core.model.generate import generate_ids, model_device

MAX_BATCH = 128
LOGITS_BUDGET = 1 << 27  # floats of logits per forward pass (512 MB in fp32)


@dataclass
class Scored:
    """One teacher-forced sequence: mean NLL of its target tokens, and per target token the NLL,
    the argmax prediction and the true id."""

    nll: float
    token_nlls: list[float]
    predicted: list[int]
    target: list[int]


def _context_length(model, tokenizer) -> int:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048


def qa_pair(question: str, answer: str, template: str, tokenizer, history: list[dict] | None = None,
            ) -> tuple[str, str, bool]:
    """(prompt, target, add_special_tokens) for scoring ``answer`` after ``question`` (and a
    conversation's earlier turns, ``history``): the prompt's tokens are a prefix of the full text's,
    as core/demo/report.py scores MCQ choices."""
    rendered = render({"question": question, "answer": answer, "history": history or []}, template, tokenizer)
    head = rendered.text[:rendered.label_start]
    prompt = head.rstrip(" ")
    target = head[len(prompt):] + rendered.text[rendered.label_start:rendered.label_end]
    return prompt, target, not rendered.specials_in_text


class ModelPasses:
    """Forward passes and greedy decoding of one model, reported to a progress tracker."""

    def __init__(self, model, tokenizer, tracker: ProgressTracker | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.tracker = tracker or ProgressTracker()
        self.device = model_device(model)
        self.pad_id = pad_token_id_for(tokenizer)
        self.max_length = _context_length(model, tokenizer)
        self.vocab = int(getattr(getattr(model, "config", None), "vocab_size", None) or 50_000)

    def ids(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def score_pairs(self, pairs: Sequence[tuple[str, str, bool]]) -> list[Scored]:
        """Score (prompt, target, add_special_tokens) pairs: the target's tokens after the prompt."""
        sequences = []
        for prompt, target, special in pairs:
            full = self.ids(prompt + target, special)
            sequences.append((full, len(self.ids(prompt, special)) if prompt or special else 0))
        return self.score_sequences(sequences)

    def score_sequences(self, sequences: Sequence[tuple[list[int], int]]) -> list[Scored]:
        """Teacher-forced pass over (ids, n_prompt): tokens ids[n_prompt:] are scored."""
        sequences = [(ids[:self.max_length], n) for ids, n in sequences]
        results: list[Scored] = []
        start = 0
        while start < len(sequences):
            # As many rows as the logits budget allows (a big vocabulary means small batches).
            end, width = start, 0
            while end < len(sequences) and end - start < MAX_BATCH:
                w = max(width, len(sequences[end][0]))
                if end > start and (end - start + 1) * w * self.vocab > LOGITS_BUDGET:
                    break
                width, end = w, end + 1
            results += self._score_batch(sequences[start:end], width)
            self.tracker.advance(end - start)
            start = end
        return results

    @torch.no_grad()
    def _score_batch(self, batch, width: int) -> list[Scored]:
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        for i, (ids, n_prompt) in enumerate(batch):
            input_ids[i, :len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention[i, :len(ids)] = 1
            labels[i, n_prompt:len(ids)] = torch.as_tensor(ids[n_prompt:], dtype=torch.long)
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)).logits
        logits = logits[:, :-1].float().cpu()
        shifted = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), shifted.clamp(min=0), reduction="none")
        mask = (shifted != -100).float()
        # The mean is taken exactly as core/demo/report.py's sequence_nll takes it.
        means = ((nll * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()
        predicted = logits.argmax(-1)
        out = []
        for i in range(len(batch)):
            keep = mask[i].bool()
            out.append(Scored(means[i], nll[i][keep].tolist(), predicted[i][keep].tolist(), shifted[i][keep].tolist()))
        return out

    def greedy(self, prompts: Sequence[str], add_special_tokens: bool, max_new_tokens: int) -> list[str]:
        """Greedy answers, decoded without special tokens and stripped (as report.py does)."""
        encoded = [self.ids(p, add_special_tokens) for p in prompts]
        new_ids = self.greedy_ids(encoded, max_new_tokens)
        return [self.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new_ids]

    def greedy_ids(self, prompt_ids: Sequence[list[int]], max_new_tokens: int) -> list[list[int]]:
        """Greedy new ids, one batch at a time so that progress and a cancel come in between."""
        out: list[list[int]] = []
        for start in range(0, len(prompt_ids), MAX_BATCH):
            chunk = prompt_ids[start:start + MAX_BATCH]
            # Stay inside the model's context: positions beyond it are undefined for most models.
            room = self.max_length - max(len(ids) for ids in chunk)
            out += generate_ids(
                self.model, chunk, pad_token_id=self.pad_id, eos_token_id=self.tokenizer.eos_token_id,
                max_new_tokens=max(1, min(max_new_tokens, room)), batch_size=MAX_BATCH)
            self.tracker.advance(len(chunk))
        return out
