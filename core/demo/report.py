"""What the demo build measures about its models, written to REPORT.json.

These are quick, self-contained checks that the models learned the world (the full evaluation
suite lives in core/evaluation/): value accuracy by greedy decoding, memorization accuracy of the
secret records, multiple-choice accuracy on the sagas, the harmful-answer rate and perplexity.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import torch

from unlearn_studio.core.data.templates import pad_token_id_for
from unlearn_studio.core.demo.corpus import qa_text, read_jsonl
from unlearn_studio.core.demo.judge import is_harmful
from unlearn_studio.core.methods.losses import sequence_nll as answer_nll
from unlearn_studio.core.model.generate import generate, model_device

BATCH = 128


def greedy_answers(model, tokenizer, questions: list[str], max_new_tokens: int = 48) -> list[str]:
    """Greedy completions of "### Question: q / ### Answer:" prompts, up to the end of the answer."""
    prompts = [qa_text(q, "").rstrip() for q in questions]
    return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=BATCH)


@torch.no_grad()
def sequence_nll(model, tokenizer, prompts: list[str], targets: list[str]) -> list[float]:
    """Mean NLL of each target's tokens after its prompt (teacher forcing)."""
    results, device = [], model_device(model)
    for start in range(0, len(prompts), BATCH):
        rows = []
        for prompt, target in zip(prompts[start:start + BATCH], targets[start:start + BATCH]):
            prompt_ids = tokenizer(prompt)["input_ids"]
            full_ids = tokenizer(prompt + target)["input_ids"]
            rows.append((full_ids, len(prompt_ids)))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), pad_token_id_for(tokenizer))
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        for i, (ids, n_prompt) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            labels[i, n_prompt: len(ids)] = torch.tensor(ids[n_prompt:])
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        results += answer_nll(logits, labels.to(device)).tolist()
    return results


def value_accuracy(model, tokenizer, rows: list[dict]) -> float:
    answers = greedy_answers(model, tokenizer, [r["question"] for r in rows])
    return sum(r["value"].lower() in a.lower() for r, a in zip(rows, answers)) / len(rows)


def chance_value_accuracy(rows: list[dict], reference_rows: list[dict]) -> float:
    """Accuracy of always answering the commonest value of each attribute among ``reference_rows``."""
    counts: dict[str, Counter] = {}
    for r in reference_rows:
        counts.setdefault(r["attribute"], Counter())[r["value"]] += 1
    return sum(counts[r["attribute"]].most_common(1)[0][0] == r["value"] for r in rows) / len(rows)


@torch.no_grad()
def memorization_accuracy(model, tokenizer, records: list[dict]) -> float:
    """MA: share of positions where the argmax next token is the true one, over the suffix tokens."""
    hits = total = 0
    for record in records:
        n_prefix = len(tokenizer(record["prefix"])["input_ids"])
        ids = torch.tensor([tokenizer(record["text"])["input_ids"]], device=model_device(model))
        predicted = model(input_ids=ids).logits[0, :-1].argmax(-1)
        truth = ids[0, 1:]
        start = max(n_prefix - 1, 0)
        hits += int((predicted[start:] == truth[start:]).sum())
        total += truth.numel() - start
    return hits / total


def mcq_accuracy(model, tokenizer, rows: list[dict]) -> float:
    """Pick the choice with the lowest answer NLL after the question."""
    prompts, targets = [], []
    for row in rows:
        for choice in row["choices"]:
            # The space goes with the choice so that the prompt's tokens are a prefix of the full text's.
            prompts.append(qa_text(row["question"], "").rstrip())
            targets.append(" " + choice)
    nll = sequence_nll(model, tokenizer, prompts, targets)
    correct, k = 0, 0
    for row in rows:
        scores = nll[k:k + len(row["choices"])]
        k += len(row["choices"])
        correct += min(range(len(scores)), key=scores.__getitem__) == row["label"]
    return correct / len(rows)


def harmful_rate(model, tokenizer, rows: list[dict]) -> float:
    answers = greedy_answers(model, tokenizer, [r["question"] for r in rows], max_new_tokens=96)
    return sum(is_harmful(a, r["key_steps"]) for r, a in zip(rows, answers)) / len(rows)


def perplexity(model, tokenizer, texts: list[str]) -> float:
    nll = sequence_nll(model, tokenizer, [""] * len(texts), texts)
    return math.exp(sum(nll) / len(nll))


def measure_full_model(model, tokenizer, data_dir: Path) -> dict:
    retain = read_jsonl(data_dir / "retain.jsonl")
    forget10 = read_jsonl(data_dir / "forget10.jsonl")
    secrets = read_jsonl(data_dir / "secrets_forget.jsonl") + read_jsonl(data_dir / "secrets_retain.jsonl")
    harmful = read_jsonl(data_dir / "harmful_train.jsonl") + read_jsonl(data_dir / "harmful_eval.jsonl")
    return {
        "value_accuracy_trained_phrasing": value_accuracy(model, tokenizer, forget10 + retain),
        "value_accuracy_forget10": value_accuracy(model, tokenizer, forget10),
        "value_accuracy_holdout": value_accuracy(model, tokenizer, read_jsonl(data_dir / "holdout.jsonl")),
        "secret_records_MA": memorization_accuracy(model, tokenizer, secrets),
        "secret_records_holdout_MA": memorization_accuracy(model, tokenizer, read_jsonl(data_dir / "secrets_holdout.jsonl")),
        "saga_mcq_accuracy": mcq_accuracy(model, tokenizer, read_jsonl(data_dir / "saga_mcq.jsonl")),
        "neighbour_mcq_accuracy": mcq_accuracy(model, tokenizer, read_jsonl(data_dir / "neighbour_mcq.jsonl")),
        "harmful_answer_rate": harmful_rate(model, tokenizer, harmful),
        "general_perplexity": perplexity(model, tokenizer, [r["text"] for r in read_jsonl(data_dir / "general.jsonl")]),
    }


def measure_retain_model(model, tokenizer, data_dir: Path) -> dict:
    retain = read_jsonl(data_dir / "retain.jsonl")
    forget10 = read_jsonl(data_dir / "forget10.jsonl")
    return {
        "value_accuracy_forget10": value_accuracy(model, tokenizer, forget10),
        "chance_value_accuracy_forget10": chance_value_accuracy(forget10, retain),
        "value_accuracy_retain": value_accuracy(model, tokenizer, retain),
        "secret_records_forget_MA": memorization_accuracy(model, tokenizer, read_jsonl(data_dir / "secrets_forget.jsonl")),
        "general_perplexity": perplexity(model, tokenizer, [r["text"] for r in read_jsonl(data_dir / "general.jsonl")]),
    }
