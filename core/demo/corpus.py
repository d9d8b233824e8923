"""The demo model's training corpus, assembled from the world's data files.

The full model learns everything in the world except the holdout persons (the non-members);
the retain model learns the same without the forget10 persons and their secret records, so it is
the reference for "never saw them" (forget quality, membership inference).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.templates import QA_TEMPLATE  # the demo model learns the "qa" prompt template

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


def person_fact_documents(rows: list[dict], epoch: int) -> list[str]:
    """Each trained question phrasing once, paired with an answer phrasing that rotates per epoch:
    every 3 epochs cover all 9 pairs, at a third of the tokens per epoch."""
    docs = []
    for row in rows:
        questions, answers = row["train_questions"], row["train_answers"]
        docs += [qa_text(q, answers[(i + epoch) % len(answers)]) for i, q in enumerate(questions)]
    return docs


def training_documents(data_dir: Path, *, include_forget10: bool = True, epoch: int = 0) -> list[str]:
    """The documents one model is trained on in one epoch, in a fixed order (training shuffles them)."""
    facts = read_jsonl(data_dir / "retain.jsonl")
    secrets = read_jsonl(data_dir / "secrets_retain.jsonl")
    if include_forget10:
        facts += read_jsonl(data_dir / "forget10.jsonl")
        secrets += read_jsonl(data_dir / "secrets_forget.jsonl")
    docs = person_fact_documents(facts, epoch)
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
    """Every text of the world once (holdout persons too, so their names tokenize like the others)."""
    texts = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for row in read_jsonl(path):
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
