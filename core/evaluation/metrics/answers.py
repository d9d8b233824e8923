"""Value accuracy: does a greedy answer contain the fact?

Templated words ("... was born in ...") inflate ROUGE and exact match on a small model, so what
counts is the attribute's VALUE. Rows with a "value" field (the demo world's QA sets) are
correct when the value occurs in the answer, case-insensitively (exactly as core/demo/report.py
measures it). Rows without one (a user's QA set) fall back to the whole reference answer: correct
when its normalised form (lower case, punctuation and runs of spaces folded to one space) occurs
in the normalised generation.
"""

from __future__ import annotations

import re

_NON_WORD = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    """Lower case, every run of non-word characters one space, padded with one space."""
    return f" {_NON_WORD.sub(' ', text.lower()).strip()} "


def value_correct(generation: str, row: dict) -> bool:
    """Whether ``generation`` states the row's value (or, without one, its whole answer)."""
    value = row.get("value")
    if value:
        return str(value).lower() in generation.lower()
    reference = normalise(str(row.get("answer", ""))).strip()
    return bool(reference) and f" {reference} " in normalise(generation)


def value_accuracy(generations: list[str], rows: list[dict]) -> float:
    """Share of rows whose generation is correct by :func:`value_correct`."""
    if not rows:
        return float("nan")
    return sum(value_correct(g, r) for g, r in zip(generations, rows, strict=True)) / len(rows)
