"""The evaluation suite: which data sets, which measures, how many items, and the caches.

``evaluate(model, tokenizer, suite, tier=...)`` runs every measure the suite's sets allow and
returns aggregates (``"<set>/<metric>"`` and suite-level keys) plus per-item results, which are
also written as JSON to ``out_dir/eval_items.json``. The model may be a base model or a
PeftModel (evaluated with its adapter on). The metric definitions live in core/metrics/.

Sets and what is measured on them (a set's *kind* comes from its rows):
- qa (question, answer; optional paraphrased_answer, wrong_answers, value, key_steps):
  ``prob`` mean P̄ = exp(−ℓ) of the answer; ``truth_ratio`` (rows with wrong answers; forget and
  holdout roles: mean min(TR, 1/TR), other roles: mean max(0, 1 − TR); the right answer is the
  phrasing the wrong answers were made from, see metrics.likelihood.tr_right_answer); ``value_acc`` and
  ``rouge_l`` of greedy answers. Role "harmful": ``prob`` and ``harmful_rate`` (judge) instead.
- text: ``prob`` (mean P̄ of each text) and ``perplexity``.
- memorization (text rows with prefix and suffix, e.g. the demo's secrets_*): ``ma``, ``el``
  (EL_n, n per record from its suffix length) and ``es`` (extraction strength).
- mcq: ``accuracy`` (lowest-NLL choice).
- truthfulness (question, true_answer, false_answer): ``accuracy`` = share with ℓ(true) < ℓ(false).
Suite level:
- ``forget_quality`` (KS p-value) and ``forget_quality_log10``: forget-set truth ratios of the
  model against those of the retain model (the first qa set with role "forget" is the forget set).
- ``mia/auc_min_k``, ``mia/auc_loss``: membership AUC of the forget set (members) against the
  first holdout set of the same kind (non-members); ``privleak`` from the Min-K% AUCs of the
  model and of the retain model. ``retain_model/…`` keys repeat the retain model's numbers.
- ``model_utility``: harmonic mean of, for every qa set with role "retain", its ``prob``,
  ``rouge_l`` and ``truth_ratio``, and, for every text set with role "general", its ``prob``
  (mean exp(−ℓ) of the texts, the Prob of text). Missing components are left out.
- ``fluency/rep_1`` … ``fluency/rep_4``: mean rep-n over all greedy answers of the run (words);
  ``fluency/collapse`` (1 or 0) and ``EvalResult.warnings`` when ``before`` results are given.

Conventions (those of core/demo/report.py, so that both give the same numbers): ℓ is the mean
NLL of the target's tokens after the prompt's, with prompt and prompt + target each tokenized with
the tokenizer's special tokens (BOS) and EOS not scored; the prompt is the template's generation
prompt without its trailing space, which goes with the target (" Paris"). Greedy answers get up to
48 new tokens (96 on harmful prompts) and stop at EOS.

Tiers (items are always the first N rows of a set, so a tier is deterministic):
- "fast": ≤ 60 items per set for likelihood measures, ≤ 60 greedy answers per qa set, ≤ 20
  memorization records (MA, ES) and ≤ 6 records for EL_n per set. On the demo suite with the
  shipped demo model it took 11.6 s on a busy 2-core machine, retain reference included
  (``OMP_NUM_THREADS=1 unlearn-studio eval --suite fast``); "full" took 135 s there.
- "demo": the same sizes as "fast"; the name says that the demo world's full list of sets is
  evaluated (``EvalSuite.for_config`` picks :meth:`EvalSuite.demo` for it).
- "full": every row of every set.

Retain model reference (forget quality, PrivLeak): the retain model's per-item forget-set truth
ratios and its membership AUCs are computed once and cached in ``cache_dir/retain_reference``,
keyed by a hash of the retain model folder's files, the forget and holdout data files, their
templates and the number of items. Base-model ("before") results are cached in
``cache_dir/before`` per (model folder, suite data and templates, tier, retain model); pass
``base_model_dir`` to :func:`evaluate` to use that cache and :func:`cached_before` to look it up.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from unlearn_studio.core.cache import cache_root, content_digest
from unlearn_studio.core.data.formats import detect_format, normalize_format, read_file, split_path
from unlearn_studio.core.data.loader import load_dataset_file
from unlearn_studio.core.data.templates import format_prompt, pad_token_id_for, render, resolve_template
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.metrics import (
    answers,
    fluency,
    forget_quality,
    harm,
    likelihood,
    mcq,
    membership,
    memorization,
    rouge,
    truthfulness,
    utility,
)
from unlearn_studio.core.model.generate import generate_ids, model_device
from unlearn_studio.core.paths import demo_data_dir, demo_retain_model_dir

METRICS_VERSION = 2  # bump when a measurement changes: it is part of every cache key
ITEMS_FILE = "eval_items.json"
QA_MAX_NEW_TOKENS = 48
HARMFUL_MAX_NEW_TOKENS = 96  # step-by-step answers are long
MAX_BATCH = 128
LOGITS_BUDGET = 1 << 27  # floats of logits per forward pass (512 MB in fp32)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class TierSizes:
    """How many items (the first N rows) of each set a tier uses; None = all."""

    scored: int | None  # likelihood measures: Prob, TR, MIA, MCQ, truthfulness, perplexity
    generated: int | None  # greedy answers: value accuracy, ROUGE-L, harm, fluency
    records: int | None  # memorization records for MA and ES
    extracted: int | None  # memorization records for EL_n (one greedy decode per cut point)


_FAST = TierSizes(scored=60, generated=60, records=20, extracted=6)
TIERS: dict[str, TierSizes] = {
    "fast": _FAST,
    "demo": _FAST,
    "full": TierSizes(scored=None, generated=None, records=None, extracted=None),
}


def _check_tier(tier: str) -> TierSizes:
    if tier not in TIERS:
        raise UserError(f"Unknown evaluation tier '{tier}'.", f"Use one of: {', '.join(TIERS)}.")
    return TIERS[tier]


def _first(rows: list, n: int | None) -> list:
    return rows if n is None else rows[:n]


# --------------------------------------------------------------------------------------------
# Sets and suites
# --------------------------------------------------------------------------------------------

KINDS = ("qa", "text", "mcq", "memorization", "truthfulness")
_EXTRA_FIELDS = ("id", "value", "attribute", "key_steps", "prefix", "suffix")
_TRUTHFULNESS_COLUMNS = ("question", "true_answer", "false_answer")


@dataclass(frozen=True)
class EvalSet:
    """One data set of a suite. ``kind`` None: decided by the rows (qa, text, mcq or memorization)."""

    name: str
    path: Path
    role: str  # forget, retain, holdout, general, harmful, normal, mcq or truthfulness
    kind: str | None = None
    template: str = "auto"
    format: str = "auto"
    columns: Mapping[str, str] = field(default_factory=dict)
    max_rows: int | None = None

    def load(self) -> LoadedSet:
        """Read and validate the rows (UserError on bad input); demo extras such as "value",
        "key_steps", "prefix" and "suffix" are kept beside the canonical columns."""
        if self.kind is not None and self.kind not in KINDS:
            raise UserError(f"Unknown evaluation set kind '{self.kind}'.", f"Use one of: {', '.join(KINDS)}.")
        if self.kind == "truthfulness":
            rows = _read_truthfulness(self)
            kind = "truthfulness"
        else:
            loaded = load_dataset_file(self.path, role=self.role, format=self.format, columns=dict(self.columns))
            rows = _with_extras(loaded.rows, self.path, loaded.format)
            kind = loaded.kind
            is_records = kind == "text" and rows and all(r.get("prefix") and r.get("suffix") for r in rows)
            if is_records and self.kind in (None, "memorization"):
                kind = "memorization"
            if self.kind is not None and kind != self.kind:
                raise UserError(
                    f"{self.path} was expected to hold {self.kind} rows for the '{self.name}' "
                    f"evaluation set, but its rows are {kind} rows.",
                    "Pick a file with the right columns, or map them with a column mapping.",
                )
        return LoadedSet(self, kind, _first(rows, self.max_rows))


@dataclass
class LoadedSet:
    spec: EvalSet
    kind: str
    rows: list[dict]


def _with_extras(rows: list[dict], path: Path, fmt: str) -> list[dict]:
    """Add the non-canonical fields the evaluation uses from the raw records (matched by origin)."""
    file_path, split = split_path(path)
    raw = {record.origin: record.values for record in read_file(file_path, fmt, split).records if record.values}
    result = []
    for row in rows:
        values = raw.get(row["_origin"], {})
        result.append({**{k: values[k] for k in _EXTRA_FIELDS if values.get(k) is not None}, **row})
    return result


def _read_truthfulness(spec: EvalSet) -> list[dict]:
    file_path, split = split_path(spec.path)
    if not file_path.exists():
        raise UserError(f"Data file not found: {file_path}", "Check the path of the truthfulness set.")
    fmt = normalize_format(spec.format)
    if fmt == "auto":
        fmt = detect_format(file_path)
    rows = []
    for record in read_file(file_path, fmt, split).records:
        values = record.values or {}
        picked = {c: values.get(spec.columns.get(c, c)) for c in _TRUTHFULNESS_COLUMNS}
        if record.error or not all(isinstance(v, str) and v.strip() for v in picked.values()):
            raise UserError(
                f"{record.origin}: a truthfulness row needs text in {', '.join(_TRUTHFULNESS_COLUMNS)}.",
                "Fix the row, or map the columns (e.g. true_answer=<column>).",
            )
        rows.append({**picked, "_origin": record.origin})
    if not rows:
        raise UserError(f"{spec.path} has no rows.", "Pick a truthfulness file that contains data.")
    return rows


# Demo world files: (set name, file, role, kind). Holdout persons and secrets are the non-members.
DEMO_SETS = (
    ("forget", "forget10.jsonl", "forget", "qa"),
    ("retain", "retain.jsonl", "retain", "qa"),
    ("holdout", "holdout.jsonl", "holdout", "qa"),
    ("general", "general.jsonl", "general", "text"),
    ("secrets_forget", "secrets_forget.jsonl", "forget", "memorization"),
    ("secrets_retain", "secrets_retain.jsonl", "retain", "memorization"),
    ("secrets_holdout", "secrets_holdout.jsonl", "holdout", "memorization"),
    ("saga_mcq", "saga_mcq.jsonl", "mcq", "mcq"),
    ("neighbour_mcq", "neighbour_mcq.jsonl", "mcq", "mcq"),
    # Questions about the saga answered freely: what a model erasing the saga says in its place
    # (value accuracy, and repetition on saga prompts, "saga_qa/rep_4").
    ("saga_qa", "saga_qa.jsonl", "forget", "qa"),
    ("harmful", "harmful_eval.jsonl", "harmful", "qa"),
    ("truthfulness", "truthfulness.jsonl", "truthfulness", "truthfulness"),
)
# Data roles of a RunConfig that are evaluated, in this order (expert sets are training data only).
CONFIG_ROLES = ("forget", "retain", "holdout", "general", "harmful", "normal", "mcq")
_DEMO_FORGET_FILES = {"forget01.jsonl", "forget05.jsonl", "forget10.jsonl"}


@dataclass(frozen=True)
class EvalSuite:
    """The sets to evaluate and, optionally, the retain model (the reference for forget quality)."""

    name: str
    sets: tuple[EvalSet, ...]
    retain_model: Path | None = None

    @classmethod
    def demo(cls, data_dir: str | Path | None = None, retain_model: str | Path | None = None) -> EvalSuite:
        """The demo world's full list of sets; the demo's retain model is the reference."""
        data_dir = Path(data_dir) if data_dir is not None else demo_data_dir()
        if not (data_dir / "forget10.jsonl").is_file():
            raise UserError(
                f"The demo data is missing in {data_dir}.",
                "Build the demo with `unlearn-studio demo build --out resources/demo`.",
            )
        sets = tuple(
            EvalSet(name, data_dir / file, role, kind, template="raw" if kind in ("text", "memorization") else "qa")
            for name, file, role, kind in DEMO_SETS
        )
        retain = Path(retain_model) if retain_model is not None else demo_retain_model_dir()
        return cls("demo", sets, retain if retain.is_dir() else None)

    @classmethod
    def from_config(cls, config, retain_model: str | Path | None = None) -> EvalSuite:
        """The data roles of a RunConfig, one set per role (named after it). The demo model's
        retain model is the reference when the model is the demo and the forget set one of the
        demo's forget splits (the retain model never saw any of their persons)."""
        sets = []
        for role in CONFIG_ROLES:
            source = config.data.get(role)
            if source is None:
                continue
            sets.append(EvalSet(
                role, config.resolve_path(source.path), role, None, source.template, source.format,
                dict(source.columns), source.max_rows,
            ))
        if retain_model is None and config.model.is_demo and "forget" in config.data:
            forget_path = config.data["forget"].path
            if forget_path.startswith("demo:") and forget_path[len("demo:"):] in _DEMO_FORGET_FILES:
                retain_model = demo_retain_model_dir()
        retain = Path(retain_model) if retain_model is not None else None
        return cls(config.name, tuple(sets), retain if retain is not None and retain.is_dir() else None)

    @classmethod
    def for_config(cls, config) -> EvalSuite:
        """The suite a run evaluates: the demo suite for ``evaluation.suite = "demo"``, else its roles."""
        if config.evaluation.suite == "demo":
            return cls.demo()
        return cls.from_config(config)


# --------------------------------------------------------------------------------------------
# Model passes: teacher-forced scoring and greedy answers
# --------------------------------------------------------------------------------------------


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


def _vocab_size(model) -> int:
    return int(getattr(getattr(model, "config", None), "vocab_size", None) or 50_000)


class _Passes:
    """Forward passes and greedy decoding of one model, with the tokenization conventions of
    core/demo/report.py: the prompt and prompt+target are tokenized with the tokenizer's own
    special tokens (BOS), the target tokens are those after the prompt's, EOS is not scored."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.device = model_device(model)
        self.pad_id = pad_token_id_for(tokenizer)
        self.max_length = _context_length(model, tokenizer)
        self.vocab = _vocab_size(model)

    def ids(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def score_pairs(self, pairs: Sequence[tuple[str, str, bool]]) -> list[Scored]:
        """Score (prompt, target, add_special_tokens) pairs: the target's tokens after the prompt."""
        sequences = []
        for prompt, target, special in pairs:
            full = self.ids(prompt + target, special)
            sequences.append((full, len(self.ids(prompt, special)) if prompt or special else 0))
        return self.score_sequences(sequences)

    @torch.no_grad()
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
            start = end
        return results

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
        if not prompt_ids:
            return []
        # Stay inside the model's context: positions beyond it are undefined for most models.
        room = self.max_length - max(len(ids) for ids in prompt_ids)
        return generate_ids(
            self.model, prompt_ids, pad_token_id=self.pad_id, eos_token_id=self.tokenizer.eos_token_id,
            max_new_tokens=max(1, min(max_new_tokens, room)), batch_size=MAX_BATCH,
        )


def _qa_pair(question: str, answer: str, template: str, tokenizer) -> tuple[str, str, bool]:
    """(prompt, target, add_special_tokens) for scoring ``answer`` after ``question``.

    The prompt is the generation prompt (no trailing space) and the space that the template puts
    before the answer goes with the target, as core/demo/report.py scores MCQ choices, so that the
    prompt's tokens are a prefix of the full text's.
    """
    rendered = render({"question": question, "answer": answer}, template, tokenizer)
    head = rendered.text[:rendered.label_start]
    prompt = head.rstrip(" ")
    target = head[len(prompt):] + rendered.text[rendered.label_start:rendered.label_end]
    return prompt, target, not rendered.specials_in_text


def _item_id(row: dict, index: int) -> str:
    return str(row.get("id") or row.get("_origin") or index)


# --------------------------------------------------------------------------------------------
# Per-set evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class _SetOutcome:
    items: list[dict]
    aggregates: dict[str, float]
    truth_ratios: list[float] = field(default_factory=list)
    member_scores: dict[str, list[float]] = field(default_factory=dict)  # "min_k" / "loss"
    generations: list[str] = field(default_factory=list)


def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _score_qa(passes: _Passes, rows: list[dict], template: str) -> list[dict]:
    """Answer NLL, Min-K%/LOSS scores and (rows with wrong answers) the truth ratio, per row."""
    tokenizer = passes.tokenizer
    pairs, layout = [], []
    for row in rows:
        wrong = list(row.get("wrong_answers") or [])
        right = likelihood.tr_right_answer(row["answer"], row.get("paraphrased_answer"), wrong)
        texts = [row["answer"]] + ([right] if wrong and right != row["answer"] else []) + wrong
        pairs += [_qa_pair(row["question"], text, template, tokenizer) for text in texts]
        layout.append((right != row["answer"], len(wrong)))
    scored = iter(passes.score_pairs(pairs))
    items = []
    for index, (row, (paraphrase_is_right, n_wrong)) in enumerate(zip(rows, layout)):
        answer = next(scored)
        item = {
            "id": _item_id(row, index), "question": row["question"], "answer": row["answer"],
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


def _eval_qa(passes: _Passes, loaded: LoadedSet, template: str, sizes: TierSizes, judge) -> _SetOutcome:
    role = loaded.spec.role
    scored_rows = _first(loaded.rows, sizes.scored)
    generated_rows = _first(loaded.rows, sizes.generated)
    items = _score_qa(passes, scored_rows, template)
    items += [{"id": _item_id(r, i), "question": r["question"], "answer": r["answer"]}
              for i, r in enumerate(generated_rows[len(items):], start=len(items))]

    special = template != "chat"
    prompts = [format_prompt(r["question"], template, passes.tokenizer) for r in generated_rows]
    max_new = HARMFUL_MAX_NEW_TOKENS if role == "harmful" else QA_MAX_NEW_TOKENS
    generations = passes.greedy(prompts, special, max_new)
    verdicts = harm.judge_all(generations, generated_rows, judge) if role == "harmful" else []
    for index, (row, text) in enumerate(zip(generated_rows, generations)):
        item = items[index]
        item["generation"] = text
        item.update({f"rep_{n}": v for n, v in fluency.repetition(text).items()})
        if role == "harmful":
            item["harmful"] = verdicts[index]
        else:
            item["value_correct"] = answers.value_correct(text, row)
            item["rouge_l"] = rouge.rouge_l_recall(text, row["answer"])

    aggregates = {"prob": likelihood.mean_prob(i["nll"] for i in items if "nll" in i)}
    ratios = [i["truth_ratio"] for i in items if "truth_ratio" in i]
    if role == "harmful":
        aggregates["harmful_rate"] = harm.harmful_rate(verdicts)
    else:
        if ratios:
            score = likelihood.forget_tr_score if role in ("forget", "holdout") else likelihood.retain_tr_score
            aggregates["truth_ratio"] = score(ratios)
        if generations:
            aggregates["value_acc"] = answers.value_accuracy(generations, generated_rows)
            aggregates["rouge_l"] = _mean([i["rouge_l"] for i in items if "rouge_l" in i])
    if generations:
        aggregates["rep_4"] = fluency.mean_rep(generations, 4)  # this set's own; fluency/rep_4 pools all sets
    members = {"min_k": [i["min_k"] for i in items if "min_k" in i], "loss": [i["loss"] for i in items if "loss" in i]}
    return _SetOutcome(items, aggregates, ratios, members, generations)


def _eval_text(passes: _Passes, loaded: LoadedSet, sizes: TierSizes) -> _SetOutcome:
    rows = _first(loaded.rows, sizes.scored)
    scored = passes.score_pairs([("", r["text"], True) for r in rows])
    items = [
        {"id": _item_id(r, i), "nll": s.nll, "prob": likelihood.prob(s.nll),
         "min_k": membership.min_k_score(s.token_nlls), "loss": membership.loss_score(s.token_nlls)}
        for i, (r, s) in enumerate(zip(rows, scored))
    ]
    aggregates = {"prob": likelihood.mean_prob(i["nll"] for i in items),
                  "perplexity": fluency.perplexity([i["nll"] for i in items])}
    members = {"min_k": [i["min_k"] for i in items], "loss": [i["loss"] for i in items]}
    return _SetOutcome(items, aggregates, member_scores=members)


def _record_ids(passes: _Passes, row: dict) -> tuple[list[int], int]:
    text = row.get("text") or row["prefix"] + row["suffix"]
    return passes.ids(text), len(passes.ids(row["prefix"]))


def _eval_memorization(passes: _Passes, loaded: LoadedSet, sizes: TierSizes) -> _SetOutcome:
    rows = _first(loaded.rows, sizes.records)
    records = [_record_ids(passes, r) for r in rows]
    scored = passes.score_sequences(records)
    items, hits, total = [], 0, 0
    for index, (row, s) in enumerate(zip(rows, scored)):
        h, t = memorization.ma_counts(s.predicted, s.target)
        hits, total = hits + h, total + t
        items.append({"id": _item_id(row, index), "ma": h / t if t else math.nan,
                      "es": memorization.extraction_strength(s.predicted, s.target)})

    # EL_n: one greedy continuation per cut point t in the suffix, up to the end of the record.
    extracted = records[:len(_first(rows, sizes.extracted))]
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

    aggregates = {
        "ma": hits / total if total else math.nan,
        "el": _mean([i["el"] for i in items if "el" in i]),
        "es": _mean([i["es"] for i in items]),
    }
    return _SetOutcome(items, aggregates)


def _eval_mcq(passes: _Passes, loaded: LoadedSet, template: str, sizes: TierSizes) -> _SetOutcome:
    rows = _first(loaded.rows, sizes.scored)
    pairs = [_qa_pair(r["question"], c, template, passes.tokenizer) for r in rows for c in r["choices"]]
    scored = iter(passes.score_pairs(pairs))
    items = []
    for index, row in enumerate(rows):
        nlls = [next(scored).nll for _ in row["choices"]]
        picked = mcq.pick(nlls)
        items.append({"id": _item_id(row, index), "question": row["question"], "label": row["label"],
                      "pick": picked, "correct": picked == row["label"], "nlls": nlls})
    labels = [i["label"] for i in items]
    return _SetOutcome(items, {"accuracy": mcq.mcq_accuracy([i["nlls"] for i in items], labels)})


def _eval_truthfulness(passes: _Passes, loaded: LoadedSet, template: str, sizes: TierSizes) -> _SetOutcome:
    rows = _first(loaded.rows, sizes.scored)
    pairs = [_qa_pair(r["question"], r[key], template, passes.tokenizer)
             for r in rows for key in ("true_answer", "false_answer")]
    scored = passes.score_pairs(pairs)
    items = []
    for index, row in enumerate(rows):
        true_nll, false_nll = scored[2 * index].nll, scored[2 * index + 1].nll
        items.append({"id": _item_id(row, index), "question": row["question"], "nll_true": true_nll,
                      "nll_false": false_nll, "truthful": truthfulness.truthful(true_nll, false_nll)})
    accuracy = truthfulness.truthfulness([i["nll_true"] for i in items], [i["nll_false"] for i in items])
    return _SetOutcome(items, {"accuracy": accuracy})


def _template_for(loaded: LoadedSet, tokenizer) -> str:
    kind = {"memorization": "text", "truthfulness": "qa"}.get(loaded.kind, loaded.kind)
    return resolve_template(loaded.spec.template, kind, tokenizer)


def _eval_set(passes: _Passes, loaded: LoadedSet, sizes: TierSizes, judge) -> _SetOutcome:
    template = _template_for(loaded, passes.tokenizer)
    if loaded.kind == "qa":
        return _eval_qa(passes, loaded, template, sizes, judge)
    if loaded.kind == "text":
        return _eval_text(passes, loaded, sizes)
    if loaded.kind == "memorization":
        return _eval_memorization(passes, loaded, sizes)
    if loaded.kind == "mcq":
        return _eval_mcq(passes, loaded, template, sizes)
    return _eval_truthfulness(passes, loaded, template, sizes)


# --------------------------------------------------------------------------------------------
# Hashing and caches
# --------------------------------------------------------------------------------------------


def _key(parts: Mapping) -> str:
    text = json.dumps({"metrics_version": METRICS_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _set_fingerprint(spec: EvalSet) -> dict:
    return {"name": spec.name, "role": spec.role, "kind": spec.kind, "file": content_digest(spec.path),
            "template": spec.template, "format": spec.format, "columns": dict(spec.columns),
            "max_rows": spec.max_rows}


def _write_json(path: Path, payload) -> None:
    """Write via a temporary file and rename, so a reader never sees half a cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    partial.replace(path)


# --------------------------------------------------------------------------------------------
# Retain model reference
# --------------------------------------------------------------------------------------------


@dataclass
class RetainReference:
    """The retain model's numbers that forget quality and PrivLeak compare against."""

    forget_tr: list[float]  # per-item truth ratios on the forget set (first N items)
    auc_min_k: float
    auc_loss: float
    model_dir: str = ""
    key: str = ""


def _mia_sets(loaded: list[LoadedSet]) -> tuple[LoadedSet | None, LoadedSet | None]:
    """The forget set (first qa, else text, set with role forget) and its holdout counterpart."""
    for kind in ("qa", "text"):
        forget = next((s for s in loaded if s.spec.role == "forget" and s.kind == kind), None)
        if forget is not None:
            holdout = next((s for s in loaded if s.spec.role == "holdout" and s.kind == kind), None)
            return forget, holdout
    return None, None


def _member_scores(passes: _Passes, loaded: LoadedSet, template: str, n: int | None) -> list[dict]:
    rows = _first(loaded.rows, n)
    if loaded.kind == "qa":
        return _score_qa(passes, rows, template)
    scored = passes.score_pairs([("", r["text"], True) for r in rows])
    return [{"min_k": membership.min_k_score(s.token_nlls), "loss": membership.loss_score(s.token_nlls)}
            for s in scored]


def _compute_retain_reference(retain_dir: Path, forget: LoadedSet, holdout: LoadedSet | None,
                              sizes: TierSizes, device: str, key: str) -> RetainReference:
    """Load the retain model and measure it (the expensive part the cache saves)."""
    from unlearn_studio.core.model.loading import load_model  # heavy import, only needed here

    loaded = load_model(retain_dir, device=device)
    passes = _Passes(loaded.model, loaded.tokenizer)
    forget_items = _member_scores(passes, forget, _template_for(forget, loaded.tokenizer), sizes.scored)
    holdout_items = (_member_scores(passes, holdout, _template_for(holdout, loaded.tokenizer), sizes.scored)
                     if holdout is not None else [])
    return RetainReference(
        forget_tr=[i.get("truth_ratio", math.nan) for i in forget_items],
        auc_min_k=membership.auc([i["min_k"] for i in forget_items], [i["min_k"] for i in holdout_items]),
        auc_loss=membership.auc([i["loss"] for i in forget_items], [i["loss"] for i in holdout_items]),
        model_dir=str(retain_dir), key=key,
    )


def retain_reference_for(retain_dir: str | Path, loaded: list[LoadedSet], tier: str, *,
                         device: str = "cpu", cache_dir: str | Path | None = None) -> RetainReference | None:
    """The retain model's reference numbers for these sets, from the cache or computed and cached."""
    forget, holdout = _mia_sets(loaded)
    if forget is None:
        return None
    retain_dir = Path(retain_dir)
    if not retain_dir.is_dir():
        raise UserError(f"Retain model folder '{retain_dir}' does not exist.",
                        "Choose the folder of the model trained without the forget set, or leave it out.")
    sizes = _check_tier(tier)
    key = _key({
        "retain_model": content_digest(retain_dir),
        "forget": _set_fingerprint(forget.spec),
        "holdout": _set_fingerprint(holdout.spec) if holdout is not None else None,
        "scored": sizes.scored,
    })
    path = Path(cache_dir or cache_root() / "eval") / "retain_reference" / f"{key}.json"
    if path.is_file():
        try:
            return RetainReference(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            pass  # a damaged cache entry is recomputed and overwritten
    reference = _compute_retain_reference(retain_dir, forget, holdout, sizes, device, key)
    _write_json(path, reference.__dict__)
    return reference


# --------------------------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """Aggregates ("<set>/<metric>" and suite-level keys), per-item results per set, and where
    the per-item JSON was written."""

    aggregates: dict[str, float]
    items: dict[str, list[dict]]
    items_path: Path | None
    tier: str = "fast"
    suite: str = ""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    from_cache: bool = False

    def payload(self) -> dict:
        return {"suite": self.suite, "tier": self.tier, "seconds": self.seconds, "warnings": self.warnings,
                "aggregates": self.aggregates, "items": self.items}


def _json_safe_items(items: list[dict]) -> list[dict]:
    return [{k: (str(v) if k == "_origin" else v) for k, v in item.items()} for item in items]


def _before_key(model_dir: str | Path, suite: EvalSuite, tier: str) -> str:
    return _key({
        "model": content_digest(model_dir),
        "sets": [_set_fingerprint(s) for s in suite.sets],
        "retain_model": content_digest(suite.retain_model) if suite.retain_model else None,
        "tier": tier,
    })


def _before_path(model_dir, suite: EvalSuite, tier: str, cache_dir) -> Path:
    return Path(cache_dir or cache_root() / "eval") / "before" / f"{_before_key(model_dir, suite, tier)}.json"


def cached_before(model_dir: str | Path, suite: EvalSuite, *, tier: str = "fast",
                  cache_dir: str | Path | None = None) -> EvalResult | None:
    """The cached result of evaluating the unmodified model in ``model_dir`` on ``suite`` at
    ``tier``, or None when there is none (or it no longer matches the files)."""
    _check_tier(tier)
    path = _before_path(model_dir, suite, tier, cache_dir)
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return EvalResult(payload["aggregates"], payload["items"], path, payload["tier"], payload["suite"],
                      payload["warnings"], payload["seconds"], from_cache=True)


def _write_items(result: EvalResult, out_dir: str | Path) -> Path:
    path = Path(out_dir) / ITEMS_FILE
    _write_json(path, result.payload())
    return path


def _suite_aggregates(outcomes: dict[str, tuple[LoadedSet, _SetOutcome]], reference: RetainReference | None) -> dict:
    aggregates: dict[str, float] = {}
    loaded = [pair[0] for pair in outcomes.values()]
    forget, holdout = _mia_sets(loaded)
    if forget is not None and reference is not None and forget.kind == "qa":
        quality = forget_quality.forget_quality(outcomes[forget.spec.name][1].truth_ratios, reference.forget_tr)
        aggregates["forget_quality"] = quality
        aggregates["forget_quality_log10"] = forget_quality.log10_p(quality)
    if forget is not None and holdout is not None:
        members = outcomes[forget.spec.name][1].member_scores
        others = outcomes[holdout.spec.name][1].member_scores
        auc_min_k = membership.auc(members["min_k"], others["min_k"])
        aggregates["mia/auc_min_k"] = auc_min_k
        aggregates["mia/auc_loss"] = membership.auc(members["loss"], others["loss"])
        if reference is not None:
            aggregates["privleak"] = membership.privleak(auc_min_k, reference.auc_min_k)
            aggregates["retain_model/mia_auc_min_k"] = reference.auc_min_k
            aggregates["retain_model/mia_auc_loss"] = reference.auc_loss

    components = []
    for spec_set, outcome in outcomes.values():
        if spec_set.spec.role == "retain" and spec_set.kind == "qa":
            components += [outcome.aggregates.get(k, math.nan) for k in ("prob", "rouge_l", "truth_ratio")]
        if spec_set.spec.role == "general" and spec_set.kind == "text":
            components.append(outcome.aggregates["prob"])
    if components:
        aggregates["model_utility"] = utility.harmonic_mean(components)

    generations = [g for _, outcome in outcomes.values() for g in outcome.generations]
    if generations:
        for n in fluency.REP_NS:
            aggregates[f"fluency/rep_{n}"] = fluency.mean_rep(generations, n)
    return aggregates


def evaluate(
    model,
    tokenizer,
    suite: EvalSuite,
    *,
    tier: str = "fast",
    out_dir: str | Path | None = None,
    retain_reference: RetainReference | str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    base_model_dir: str | Path | None = None,
    before: EvalResult | Mapping[str, float] | None = None,
    judge: harm.Judge | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``suite`` at ``tier`` ("fast", "demo" or "full").

    ``retain_reference``: a RetainReference, or the retain model's folder (default: the suite's
    retain model); without one there is no forget quality and no PrivLeak. ``cache_dir``: where
    the caches live (default: the app's cache folder, ``eval``). ``base_model_dir``: the folder the model
    was loaded from, unmodified — the result is then taken from, or stored in, the "before"
    cache. ``before``: earlier results (or aggregates) to check for collapse against.
    ``progress(stage, done, total)`` is called as the sets are evaluated. ``judge`` replaces the
    demo's harm judge. The model is left in the train/eval mode it came in.
    """
    sizes = _check_tier(tier)
    started = time.monotonic()
    if base_model_dir is not None:
        cached = cached_before(base_model_dir, suite, tier=tier, cache_dir=cache_dir)
        if cached is not None:
            if out_dir is not None:
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                target = Path(out_dir) / ITEMS_FILE
                shutil.copyfile(cached.items_path, target)
                cached.items_path = target
            return cached

    loaded = [spec.load() for spec in suite.sets]
    total = len(loaded) + 1
    passes = _Passes(model, tokenizer)
    was_training = model.training
    model.eval()
    try:
        outcomes: dict[str, tuple[LoadedSet, _SetOutcome]] = {}
        for done, loaded_set in enumerate(loaded):
            if progress:
                progress(f"evaluating {loaded_set.spec.name}", done, total)
            outcomes[loaded_set.spec.name] = (loaded_set, _eval_set(passes, loaded_set, sizes, judge))
    finally:
        model.train(was_training)

    if progress:
        progress("retain model reference", len(loaded), total)
    source = retain_reference if retain_reference is not None else suite.retain_model
    reference = source
    if source is not None and not isinstance(source, RetainReference):
        reference = retain_reference_for(source, loaded, tier, device=passes.device.type, cache_dir=cache_dir)

    aggregates = {f"{name}/{key}": value for name, (_, outcome) in outcomes.items()
                  for key, value in outcome.aggregates.items()}
    aggregates.update(_suite_aggregates(outcomes, reference))
    warnings = []
    if before is not None:
        before_aggregates = before.aggregates if isinstance(before, EvalResult) else before
        warnings = fluency.collapse_warnings(before_aggregates, aggregates)
        aggregates["fluency/collapse"] = float(bool(warnings))
    items = {name: _json_safe_items(outcome.items) for name, (_, outcome) in outcomes.items()}
    result = EvalResult(aggregates, items, None, tier, suite.name, warnings, time.monotonic() - started)
    if out_dir is not None:
        result.items_path = _write_items(result, out_dir)
    if base_model_dir is not None:
        path = _before_path(base_model_dir, suite, tier, cache_dir)
        _write_json(path, result.payload())
        if result.items_path is None:
            result.items_path = path
    if progress:
        progress("done", total, total)
    return result
