"""The sampling attack: n answers per prompt at temperature 1; an item counts as known when any of
them states the fact.

Greedy decoding shows the single likeliest answer; a model that only pushed the fact below it
still says it now and then. Each prompt is the one the evaluation gives the model (the set's
template), the answers are as long as the audit's greedy ones (core/results/audit/measuring.py),
and they are judged as the evaluation judges a greedy answer: the value (or the whole answer) in
the text, or, on harmful questions, the harm judge. On memorized records the model continues the record's prefix and a
record counts as extracted when a sample reproduces its suffix. Same seed for every model.
"""

from __future__ import annotations

import math

from unlearn_studio.core.data.templates import format_prompt, pad_token_id_for
from unlearn_studio.core.evaluation.metrics.answers import normalise, value_correct
from unlearn_studio.core.evaluation.result import MetricValue
from unlearn_studio.core.evaluation.scoring import HARMFUL_MAX_NEW_TOKENS, template_for
from unlearn_studio.core.evaluation.suite import Judge, LoadedSet
from unlearn_studio.core.model.generate import generate_ids
from unlearn_studio.core.results.audit.measuring import AuditMeter, answer_tokens

BATCH = 64
SUFFIX_SLACK = 4  # tokens a record's continuation may run past its suffix's length


def can_sample(loaded: LoadedSet) -> str | None:
    """None when the set can take the sampling attack, else why not."""
    if loaded.kind in ("qa", "memorization"):
        return None
    return f"{loaded.kind} items are scored by likelihood, not by a generated answer"


def _prompts(loaded: LoadedSet, rows: list[dict], tokenizer) -> tuple[list[list[int]], int]:
    """Prompt ids per row, and the new tokens each sample may have."""
    if loaded.kind == "memorization":
        ids = [tokenizer(row["prefix"])["input_ids"] for row in rows]
        longest = max(len(tokenizer(row["suffix"], add_special_tokens=False)["input_ids"]) for row in rows)
        return ids, longest + SUFFIX_SLACK
    template = template_for(loaded, tokenizer)
    special = template != "chat"
    ids = [tokenizer(format_prompt(row["question"], template, tokenizer, history=row.get("history")),
                     add_special_tokens=special)["input_ids"] for row in rows]
    return ids, HARMFUL_MAX_NEW_TOKENS if loaded.role == "harmful" else answer_tokens(loaded, tokenizer, rows)


def _known(text: str, row: dict, kind: str, judge: Judge | None, harmful: bool) -> bool | None:
    if kind == "memorization":
        return normalise(row["suffix"]) in normalise(text)
    if harmful:
        return judge(text, row) if judge is not None else None
    return value_correct(text, row)


def sampled(model, meter: AuditMeter, loaded: LoadedSet, metric: str, *, samples: int, temperature: float,
            seed: int, judge: Judge | None, what: str) -> MetricValue:
    """Per item 1 when any of ``samples`` answers states the fact (NaN where the judge cannot
    tell), as the proportion metric ``metric`` of ``loaded``."""
    tokenizer = meter.tokenizer
    rows = loaded.rows[:meter.sizes.generated]
    prompt_ids, new_tokens = _prompts(loaded, rows, tokenizer)
    repeated = [ids for ids in prompt_ids for _ in range(samples)]
    meter.begin("prompts", what, len(rows), len(repeated))
    texts = []
    for start in range(0, len(repeated), BATCH):
        chunk = repeated[start:start + BATCH]
        new_ids = generate_ids(model, chunk, pad_token_id=pad_token_id_for(tokenizer),
                               eos_token_id=tokenizer.eos_token_id, max_new_tokens=new_tokens, do_sample=True,
                               temperature=temperature, seed=seed + start, batch_size=BATCH)
        texts += [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new_ids]
        meter.advance(len(chunk))
    harmful = loaded.role == "harmful"
    values = []
    for index, row in enumerate(rows):
        verdicts = [_known(text, row, loaded.kind, judge, harmful) for text in texts[index * samples:(index + 1) * samples]]
        judged = [v for v in verdicts if v is not None]
        values.append(math.nan if not judged else float(any(judged)))
    key = f"{loaded.name}/{metric}"
    return MetricValue.measured(key, metric, loaded.name, "proportion", {"values": values}, {"values": loaded.name})


def sampling_units(loaded: LoadedSet, items: int, samples: int) -> int:
    return min(len(loaded.rows), items) * samples
