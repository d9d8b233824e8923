"""Pre-training of the small demo model: a Llama-style causal LM trained from scratch on the corpus.

Deterministic for a given seed, torch version and thread count: one torch.Generator drives
initialisation order, shuffling and dropout-free training, and the build pins the thread count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from unlearn_studio.core.model.building import building_models


@dataclass(frozen=True)
class DemoModelShape:
    """Small enough to ship (a few MB) and to train on a laptop CPU; real Llama module names and
    grouped-query attention, so that LoRA targets and non-square k/v projections match real models."""

    hidden_size: int = 192
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256

    def llama_config(self, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
        )


@dataclass(frozen=True)
class TrainSchedule:
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    # Of each fact's 9 trained (question, answer) phrasing pairs, how many an epoch shows (corpus.py).
    qa_pairs_per_fact: int = 3
    # Fraction of the steps after which the learning rate starts its cosine decay (0: right after
    # warm-up); before it, the peak rate holds.
    decay_from: float = 0.0
    max_steps: int | None = None  # stop early; a smoke build that checks the pipeline, not the model


# The full model goes on from the retain model (core/demo/build.py): the corpus with the forget10
# persons, a gentler peak than from scratch (the model already knows the rest), every document kept
# in play so that nothing learned before is lost while the new persons are learned.
CONTINUATION = TrainSchedule(epochs=4, batch_size=32, lr=2e-3, warmup_steps=30)


def encode_documents(docs: list[str], tokenizer: PreTrainedTokenizerFast, max_length: int) -> list[list[int]]:
    """BOS + text + EOS per document, cut to ``max_length`` tokens."""
    encoded = tokenizer(docs, add_special_tokens=True)["input_ids"]
    return [(ids + [tokenizer.eos_token_id])[:max_length] for ids in encoded]


def length_grouped_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of documents of similar length, so that little compute goes to padding."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention[row, : len(seq)] = 1
    labels = input_ids.masked_fill(attention == 0, -100)
    return input_ids, attention, labels


def learning_rate_factor(step: int, schedule: TrainSchedule, total_steps: int) -> float:
    """The learning rate at ``step`` as a share of the peak: linear warm-up, the peak held until
    ``decay_from`` of the steps, then a cosine down to 2 %."""
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    decay_start = max(schedule.warmup_steps, int(schedule.decay_from * total_steps))
    progress = max(0, step - decay_start) / max(1, total_steps - decay_start)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


def train_language_model(
    documents_for_epoch: Callable[[int], list[str]],
    tokenizer: PreTrainedTokenizerFast,
    *,
    seed: int,
    shape: DemoModelShape = DemoModelShape(),
    schedule: TrainSchedule = TrainSchedule(),
    log: Callable[[str], None] = print,
    device: str = "cpu",
    start: LlamaForCausalLM | None = None,
) -> LlamaForCausalLM:
    """Train a fresh model (or go on training ``start``, in place) on the documents of each epoch
    (whole-sequence LM loss); return it in eval mode, on ``device``. A device other than the CPU is
    for trying recipes quickly (bench/demo_recipe.py): the shipped build is made on the CPU, where
    it is bit-for-bit reproducible."""
    torch.manual_seed(seed)
    if start is None:
        with building_models():  # its initial weights come from torch.nn.init, which loading elsewhere patches
            start = LlamaForCausalLM(shape.llama_config(tokenizer))
    model = start.to(device)
    sequences = encode_documents(documents_for_epoch(0), tokenizer, shape.max_position_embeddings)
    lengths = [len(s) for s in sequences]
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(sequences) / schedule.batch_size)
    total_steps = steps_per_epoch * schedule.epochs
    if schedule.max_steps is not None:
        total_steps = min(total_steps, schedule.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay,
                                  betas=(0.9, 0.98))

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, schedule, total_steps))
    model.train()
    step, started = 0, time.monotonic()
    log(f"training {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters on "
        f"{len(sequences)} documents ({sum(lengths)} tokens) per epoch for {schedule.epochs} epochs, {total_steps} steps")
    for epoch in range(schedule.epochs):
        if epoch:
            sequences = encode_documents(documents_for_epoch(epoch), tokenizer, shape.max_position_embeddings)
            lengths = [len(s) for s in sequences]
        epoch_loss, epoch_tokens = 0.0, 0
        for batch in length_grouped_batches(lengths, schedule.batch_size, generator):
            input_ids, attention, labels = (t.to(device) for t in pad_batch([sequences[i] for i in batch],
                                                                              tokenizer.eos_token_id))
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            n = int(attention.sum())
            epoch_loss += float(loss.detach()) * n
            epoch_tokens += n
            step += 1
            if step == total_steps:
                break
        log(f"epoch {epoch + 1}/{schedule.epochs}: loss {epoch_loss / epoch_tokens:.4f} "
            f"({time.monotonic() - started:.0f} s)")
        if step == total_steps:
            break
    model.eval()
    return model
