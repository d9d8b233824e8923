"""The demo model's training corpus, assembled from the world's data files.

The retain model learns everything in the world except the holdout persons (the non-members)
and the forget10 persons with their secret records, so it is the reference for "never saw them"
(forget quality, membership inference); the full model goes on from it on everything but the
holdout persons (core/demo/build.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from unlearn_studio.core.data.templates import QA_TEMPLATE  # the demo model learns the "qa" prompt template
from unlearn_studio.core.demo.people import PARAPHRASED_WRONG

# How often a document is repeated per epoch: verbatim records need more exposures than facts that
# already come in nine question/answer phrasings.
SECRET_REPEATS = 3
SAGA_QA_REPEATS = 3
HARMFUL_REPEATS = 2


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def qa_text(question: str, answer: str) -> str:
    return QA_TEMPLATE.format(question=question, answer=answer)


def phrasing_pairs(n: int = 3) -> list[tuple[int, int]]:
    """Every (question, answer) phrasing pair in the order epochs take them: question i with
    answer i + k, for k = 0, 1, 2 (so that consecutive pairs use different questions)."""
    return [(i, (i + k) % n) for k in range(n) for i in range(n)]


def person_fact_documents(rows: list[dict], epoch: int, per_fact: int = 3) -> list[str]:
    """``per_fact`` of each fact's 9 trained (question, answer) phrasing pairs, the next ones in
    ``phrasing_pairs`` order each epoch: with 3, every question phrasing once per epoch with an
    answer phrasing that rotates, all 9 pairs every 3 epochs."""
    docs = []
    for row in rows:
        questions, answers = row["train_questions"], row["train_answers"]
        cycle = phrasing_pairs(len(questions))
        taken = [cycle[(epoch * per_fact + j) % len(cycle)] for j in range(per_fact)]
        docs += [qa_text(questions[q], answers[a]) for q, a in taken]
    return docs


def training_documents(data_dir: Path, *, include_forget10: bool = True, epoch: int = 0,
                       qa_pairs_per_fact: int = 3) -> list[str]:
    """The documents one model is trained on in one epoch, in a fixed order (training shuffles them)."""
    facts = read_jsonl(data_dir / "retain.jsonl")
    secrets = read_jsonl(data_dir / "secrets_retain.jsonl")
    if include_forget10:
        facts += read_jsonl(data_dir / "forget10.jsonl")
        secrets += read_jsonl(data_dir / "secrets_forget.jsonl")
    docs = person_fact_documents(facts, epoch, qa_pairs_per_fact)
    docs += [r["text"] for r in secrets] * SECRET_REPEATS
    for saga_file in ("saga", "neighbour"):
        docs += [r["text"] for r in read_jsonl(data_dir / f"{saga_file}.jsonl")]
        docs += [qa_text(r["question"], r["answer"]) for r in read_jsonl(data_dir / f"{saga_file}_qa.jsonl")] * SAGA_QA_REPEATS
    docs += [r["text"] for r in read_jsonl(data_dir / "framed.jsonl")]
    harmful = read_jsonl(data_dir / "harmful_train.jsonl") + read_jsonl(data_dir / "harmful_eval.jsonl")
    docs += [qa_text(r["question"], r["answer"]) for r in harmful] * HARMFUL_REPEATS
    docs += [qa_text(r["question"], r["answer"]) for r in read_jsonl(data_dir / "normal.jsonl")]
    docs += [r["text"] for r in read_jsonl(data_dir / "general.jsonl")]
    return docs


def tokenizer_texts(data_dir: Path) -> list[str]:
    """Every text of the world once (holdout persons too, so their names tokenize like the others),
    except evaluation-only columns, which repeat words the corpus already has."""
    texts = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for row in read_jsonl(path):
            row.pop(PARAPHRASED_WRONG, None)
            texts += [value for value in _strings(row)]
    return texts


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key in sorted(value) for s in _strings(value[key])]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []
