"""Per-item observations of one set: what the model does on each item, before any aggregate.

One function per kind of set. Each returns a list of item dicts in the set's row order (the first
N rows of the tier), which the metrics (core/evaluation/set_metrics.py) turn into numbers and the
app shows as answers per item:

- qa: ``nll`` and ``prob`` of the answer, Min-K% and LOSS scores, the truth ratio (rows with wrong
  answers: ``truth_ratio``, ``tr_right``, ``nll_right``, ``nll_wrong``), and for the first greedy
  rows the ``generation`` with its ``rep_1..4``, and ``value_correct`` / ``rouge_l`` (harmful
  sets: ``harmful``, the judge's verdict, None where it cannot judge).
- text: ``nll``, ``prob``, ``min_k``, ``loss``.
- memorization (prefix + suffix records): ``ma_hits``/``ma_positions`` and ``ma`` on the suffix,
  ``es``, and for the first records ``el`` (EL_n, n from the suffix length).
- mcq: the choices' NLLs, the ``pick``, ``correct``, and ``chance`` (1 / number of choices).
- truthfulness: ``nll_true``, ``nll_false``, ``truthful`` (``chance`` 0.5).
Greedy answers get up to 48 new tokens (96 on harmful prompts: step-by-step answers are long).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from unlearn_studio.core.data.templates import format_prompt, resolve_template
from unlearn_studio.core.evaluation.metrics import (
    answers,
    fluency,
    harm,
    likelihood,
    mcq,
    membership,
    memorization,
    rouge,
    truthfulness,
)
from unlearn_studio.core.evaluation.passes import MAX_BATCH, ModelPasses, qa_pair
from unlearn_studio.core.evaluation.suite import LoadedSet, TierSizes, first

QA_MAX_NEW_TOKENS = 48
HARMFUL_MAX_NEW_TOKENS = 96


def item_id(row: dict, index: int) -> str:
    return str(row.get("id") or row.get("_origin") or index)


def template_for(loaded: LoadedSet, tokenizer) -> str:
    kind = {"memorization": "text", "truthfulness": "qa"}.get(loaded.kind, loaded.kind)
    return resolve_template(loaded.spec.template, kind, tokenizer, layout=loaded.layout)


def planned_units(loaded: LoadedSet, sizes: TierSizes) -> tuple[int, int]:
    """(items, units of work) the set will take at these sizes, for progress and the time left."""
    rows = loaded.rows
    if loaded.kind == "qa":
        scored = first(rows, sizes.scored)
        wrong = sum(len(r.get("wrong_answers") or []) + 1 for r in scored if r.get("wrong_answers"))
        generated = len(first(rows, sizes.generated))
        return max(len(scored), generated), len(scored) + wrong + generated
    if loaded.kind == "memorization":
        records = first(rows, sizes.records)
        extracted = first(rows, sizes.extracted)
        # A record's EL takes one greedy continuation per cut point in its suffix (about one per word).
        cuts = sum(max(1, len(r["suffix"].split())) for r in extracted)
        return len(records), len(records) + cuts
    scored = first(rows, sizes.scored)
    per_item = {"mcq": None, "truthfulness": 2}.get(loaded.kind, 1)
    return len(scored), sum(len(r["choices"]) for r in scored) if per_item is None else per_item * len(scored)


def score_set(passes: ModelPasses, loaded: LoadedSet, sizes: TierSizes,
              judge: Callable[[str, dict], bool | None] | None) -> list[dict]:
    """The set's per-item observations."""
    template = template_for(loaded, passes.tokenizer)
    if loaded.kind == "qa":
        return score_qa(passes, loaded, template, sizes, judge)
    if loaded.kind == "text":
        return score_text(passes, first(loaded.rows, sizes.scored))
    if loaded.kind == "memorization":
        return score_memorization(passes, loaded.rows, sizes)
    if loaded.kind == "mcq":
        return score_mcq(passes, first(loaded.rows, sizes.scored), template)
    return score_truthfulness(passes, first(loaded.rows, sizes.scored), template)


def score_answers(passes: ModelPasses, rows: list[dict], template: str) -> list[dict]:
    """Answer NLL, Min-K%/LOSS scores and (rows with wrong answers) the truth ratio, per row."""
    pairs, layout = [], []
    for row in rows:
        wrong = list(row.get("wrong_answers") or [])
        right = likelihood.tr_right_answer(row["answer"], row.get("paraphrased_answer"), wrong)
        texts = [row["answer"]] + ([right] if wrong and right != row["answer"] else []) + wrong
        pairs += [qa_pair(row["question"], text, template, passes.tokenizer, row.get("history")) for text in texts]
        layout.append((right != row["answer"], len(wrong)))
    scored = iter(passes.score_pairs(pairs))
    items = []
    for index, (row, (paraphrase_is_right, n_wrong)) in enumerate(zip(rows, layout)):
        answer = next(scored)
        item = {
            "id": item_id(row, index), "question": row["question"], "answer": row["answer"],
            "nll": answer.nll, "prob": likelihood.prob(answer.nll),
            "min_k": membership.min_k_score(answer.token_nlls), "loss": membership.loss_score(answer.token_nlls),
        }
        if n_wrong:
            right = next(scored).nll if paraphrase_is_right else answer.nll
            wrong_nlls = [next(scored).nll for _ in range(n_wrong)]
            item.update(tr_right="paraphrased_answer" if paraphrase_is_right else "answer", nll_right=right,
                        nll_wrong=wrong_nlls, truth_ratio=likelihood.truth_ratio(right, wrong_nlls))
        items.append(item)
    return items


def score_qa(passes: ModelPasses, loaded: LoadedSet, template: str, sizes: TierSizes, judge) -> list[dict]:
    harmful = loaded.role == "harmful"
    generated_rows = first(loaded.rows, sizes.generated)
    items = score_answers(passes, first(loaded.rows, sizes.scored), template)
    items += [{"id": item_id(r, i), "question": r["question"], "answer": r["answer"]}
              for i, r in enumerate(generated_rows[len(items):], start=len(items))]
    special = template != "chat"
    prompts = [format_prompt(r["question"], template, passes.tokenizer, history=r.get("history"))
               for r in generated_rows]
    generations = passes.greedy(prompts, special, HARMFUL_MAX_NEW_TOKENS if harmful else QA_MAX_NEW_TOKENS)
    verdicts = harm.judge_all(generations, generated_rows, judge) if harmful and judge is not None else None
    for index, (item, row, text) in enumerate(zip(items, generated_rows, generations)):
        item["generation"] = text
        item.update({f"rep_{n}": v for n, v in fluency.repetition(text).items()})
        if harmful:
            if verdicts is not None:
                item["harmful"] = verdicts[index]
        else:
            item["value_correct"] = answers.value_correct(text, row)
            item["rouge_l"] = rouge.rouge_l_recall(text, row["answer"])
    return items


def score_text(passes: ModelPasses, rows: list[dict]) -> list[dict]:
    scored = passes.score_pairs([("", r["text"], True) for r in rows])
    return [{"id": item_id(r, i), "nll": s.nll, "prob": likelihood.prob(s.nll),
             "min_k": membership.min_k_score(s.token_nlls), "loss": membership.loss_score(s.token_nlls)}
            for i, (r, s) in enumerate(zip(rows, scored))]


def _record_ids(passes: ModelPasses, row: dict) -> tuple[list[int], int]:
    text = row.get("text") or row["prefix"] + row["suffix"]
    return passes.ids(text), len(passes.ids(row["prefix"]))


def score_memorization(passes: ModelPasses, rows: list[dict], sizes: TierSizes) -> list[dict]:
    rows = first(rows, sizes.records)
    records = [_record_ids(passes, r) for r in rows]
    items = []
    for index, (row, s) in enumerate(zip(rows, passes.score_sequences(records))):
        hits, positions = memorization.ma_counts(s.predicted, s.target)
        items.append({"id": item_id(row, index), "ma_hits": hits, "ma_positions": positions,
                      "ma": hits / positions if positions else math.nan,
                      "es": memorization.extraction_strength(s.predicted, s.target),
                      "min_k": membership.min_k_score(s.token_nlls), "loss": membership.loss_score(s.token_nlls)})

    # EL_n: one greedy continuation per cut point t in the suffix, up to the end of the record.
    extracted = records[:len(first(rows, sizes.extracted))]
    jobs = []  # (record index, prompt ids, reference ids)
    for index, (ids, n_prefix) in enumerate(extracted):
        n = memorization.el_n_for(len(ids) - n_prefix)
        jobs += [(index, ids[:t], ids[t:]) for t in range(max(n_prefix, 1), len(ids) - n + 1)]
    jobs.sort(key=lambda job: len(job[2]))  # similar lengths share a batch: fewer wasted steps
    continuations: dict[int, tuple[list, list]] = {i: ([], []) for i in range(len(extracted))}
    for start in range(0, len(jobs), MAX_BATCH):
        chunk = jobs[start:start + MAX_BATCH]
        outputs = passes.greedy_ids([prompt for _, prompt, _ in chunk], max(len(ref) for *_, ref in chunk))
        for (index, _, reference), output in zip(chunk, outputs):
            continuations[index][0].append(output[:len(reference)])
            continuations[index][1].append(reference)
    for index, (ids, n_prefix) in enumerate(extracted):
        generated, references = continuations[index]
        n = memorization.el_n_for(len(ids) - n_prefix)
        items[index]["el_n"] = n
        items[index]["el"] = memorization.extraction_likelihood(generated, references, n)
    return items


def score_mcq(passes: ModelPasses, rows: list[dict], template: str) -> list[dict]:
    pairs = [qa_pair(r["question"], c, template, passes.tokenizer, r.get("history")) for r in rows
             for c in r["choices"]]
    scored = iter(passes.score_pairs(pairs))
    items = []
    for index, row in enumerate(rows):
        nlls = [next(scored).nll for _ in row["choices"]]
        picked = mcq.pick(nlls)
        items.append({"id": item_id(row, index), "question": row["question"], "label": row["label"],
                      "pick": picked, "correct": picked == row["label"], "nlls": nlls,
                      "chance": 1 / len(row["choices"])})
    return items


def score_truthfulness(passes: ModelPasses, rows: list[dict], template: str) -> list[dict]:
    pairs = [qa_pair(r["question"], r[key], template, passes.tokenizer, r.get("history"))
             for r in rows for key in ("true_answer", "false_answer")]
    scored = passes.score_pairs(pairs)
    items = []
    for index, row in enumerate(rows):
        true_nll, false_nll = scored[2 * index].nll, scored[2 * index + 1].nll
        items.append({"id": item_id(row, index), "question": row["question"], "nll_true": true_nll,
                      "nll_false": false_nll, "truthful": truthfulness.truthful(true_nll, false_nll),
                      "chance": 0.5})
    return items
