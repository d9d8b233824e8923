"""ICU's iterative refinement (arXiv 2407.20271, §3.3): which targets the model still
reproduces, and how memorized the target set is as a whole.

- A target is a record: its token ids and where its prefix ends (:func:`build_records`).
- A target is FORGOTTEN when the greedy continuation of its prefix (as many new tokens as the
  true suffix has) is unlike the true suffix: similarity F1 < ``f1_threshold`` or BLEU-4 <
  ``bleu_threshold`` (:func:`is_forgotten`).
- BLEU-4: sentence BLEU with uniform weights over 1- to 4-grams, clipped counts, the brevity
  penalty and no smoothing (so no shared 4-gram gives 0), on lowercased word and punctuation
  tokens; that is nltk's ``sentence_bleu`` on ``word_tokenize`` output, which the authors call.
- Similarity F1: token-overlap F1 of the lowercased words (``\\w+``, punctuation left out), as
  SQuAD's F1 without its article removal. The authors use BERTScore F1, which needs a BERT model.
- MA and EL, which the stop rule compares with its thresholds, are measured with the definitions
  those thresholds come from (the authors' code, himalalps/ICU train_neo_meanwhile_update.py,
  validation_ma and validation_el): MA is the greedy next-token accuracy at every position of
  the sequence, prefix included, pooled over positions; EL_10 takes the greedy continuation from
  each of the last 50 cut points that leave at least 10 true tokens, counts its 10-grams found
  among the true continuation's unclipped (repeats count) over the true continuation's 10-grams,
  and averages over the cut points, then over the records. (The evaluation suite reports MA on
  the suffix and a clipped EL_n, core/evaluation/metrics/memorization.py: on a looping
  continuation the two ELs differ several-fold, so a threshold means something only with the
  definition it was measured with.)
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from unlearn_studio.core.data.formats import read_file
from unlearn_studio.core.data.templates import IGNORE_INDEX, pad_token_id_for
from unlearn_studio.core.evaluation.metrics import memorization
from unlearn_studio.core.model.generate import generate_ids, generation_rows
from unlearn_studio.core.paths import split_path

Check = Callable[[], None] | None  # called between batches; raises to end the work (a cancel)

GENERATION_BATCH = 128
SCORING_BATCH = 32
_WORDS = re.compile(r"\w+")
_WORDS_AND_PUNCTUATION = re.compile(r"\w+|[^\w\s]")


# ---- text similarity ------------------------------------------------------------------------------


def bleu_tokens(text: str) -> list[str]:
    """Lowercased words and punctuation marks, each its own token ("7Q-51," -> 7q - 51 ,)."""
    return _WORDS_AND_PUNCTUATION.findall(text.lower())


def f1_tokens(text: str) -> list[str]:
    """Lowercased words only."""
    return _WORDS.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu4(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """Sentence BLEU-4 of ``candidate`` against one ``reference`` (token lists).

    BLEU = BP · exp(Σ_n ¼ log p_n), p_n = Σ min(count_cand, count_ref) / max(1, #candidate n-grams),
    BP = 1 if c > r else exp(1 − r/c); 0 when any p_n is 0 or the candidate is empty.
    """
    if not candidate:
        return 0.0
    log_sum = 0.0
    for n in range(1, 5):
        got, want = _ngrams(candidate, n), _ngrams(reference, n)
        matched = sum(min(count, want[gram]) for gram, count in got.items())
        if matched == 0:
            return 0.0
        log_sum += 0.25 * math.log(matched / max(1, sum(got.values())))
    c, r = len(candidate), len(reference)
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return brevity * math.exp(log_sum)


def token_f1(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """F1 of the shared tokens (multiset overlap): 2PR/(P+R); 0 when either side is empty."""
    shared = sum((Counter(candidate) & Counter(reference)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(candidate), shared / len(reference)
    return 2 * precision * recall / (precision + recall)


def is_forgotten(bleu: float, f1: float, *, f1_threshold: float, bleu_threshold: float) -> bool:
    """The paper's rule: forgotten when F1 < f1_threshold or BLEU-4 < bleu_threshold."""
    return f1 < f1_threshold or bleu < bleu_threshold


# ---- targets as records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """A target's token ids; ``ids[:n_prefix]`` is the prefix the model continues."""

    ids: list[int]
    n_prefix: int

    @property
    def prefix(self) -> list[int]:
        return self.ids[:self.n_prefix]

    @property
    def suffix(self) -> list[int]:
        return self.ids[self.n_prefix:]


def file_field(loaded, name: str) -> list[str | None]:
    """Field ``name`` (e.g. "prefix", "id") of each row's record in its file, None where it is
    missing or empty: the loader keeps the canonical columns only."""
    path, split = split_path(loaded.path)
    raw = {r.origin: r.values for r in read_file(path, loaded.format, split).records if r.values}
    values = []
    for row in loaded.rows:
        value = raw.get(row.get("_origin"), {}).get(name)
        values.append(str(value) if value not in (None, "") else None)
    return values


def build_records(role_data, tokenizer, prefix_tokens: int) -> list[Record]:
    """One record per row of a role (a ``RoleData``), with the evaluation suite's tokenization.

    Text rows: the text with the tokenizer's special tokens; the prefix is the file's "prefix"
    field when it has one (as in the demo's secret records), else the first ``prefix_tokens``
    tokens (at most half the text). Question/answer rows: the prompt is the prefix and the
    answer the suffix, as the run's template tokenized them (EOS left off).
    """
    prefixes = file_field(role_data.loaded, "prefix")
    records = []
    for row, example, prefix in zip(role_data.loaded.rows, role_data.examples, prefixes, strict=True):
        if "text" in row:
            ids = list(tokenizer(row["text"])["input_ids"])
            n_prefix = len(tokenizer(prefix)["input_ids"]) if prefix else 0
            if not 0 < n_prefix < len(ids):
                n_prefix = max(1, min(prefix_tokens, len(ids) // 2))
        else:
            ids, labels = list(example["input_ids"]), example["labels"]
            n_prefix = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(ids))
            if len(ids) > n_prefix + 1 and ids[-1] == tokenizer.eos_token_id:
                ids = ids[:-1]
        # At least one token to continue from and one to predict.
        records.append(Record(ids, max(1, min(n_prefix, len(ids) - 1))))
    return records


# ---- model passes ---------------------------------------------------------------------------------


@contextlib.contextmanager
def evaluating(model) -> Iterator[torch.nn.Module]:
    """The model to generate with (a DDP wrapper unwrapped), in eval mode inside the block."""
    inner = getattr(model, "module", model)
    was_training = inner.training
    inner.eval()
    try:
        yield inner
    finally:
        inner.train(was_training)


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def teacher_forced_predictions(model, records: Sequence[Record], pad_token_id: int,
                               batch_size: int = SCORING_BATCH, check: Check = None) -> list[list[int]]:
    """Per record, the argmax prediction of every token after the first (tokens 1..L−1), with the
    record fed in whole. ``check`` is called before each batch (it raises to end the work)."""
    predictions = []
    for start in range(0, len(records), batch_size):
        if check is not None:
            check()
        chunk = records[start:start + batch_size]
        width = max(len(r.ids) for r in chunk)
        input_ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for i, record in enumerate(chunk):
            input_ids[i, :len(record.ids)] = torch.as_tensor(record.ids)
            attention[i, :len(record.ids)] = 1
        device = _device(model)
        argmax = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.argmax(-1).cpu()
        # Position t predicts token t + 1.
        predictions += [argmax[i, :len(r.ids) - 1].tolist() for i, r in enumerate(chunk)]
    return predictions


def greedy_continuations(model, tokenizer, jobs: Sequence[tuple[list[int], int]],
                         batch_size: int = GENERATION_BATCH, check: Check = None) -> list[list[int]]:
    """Greedy new ids for (prompt ids, length) jobs, each cut to its length; similar lengths share
    a batch, as in the evaluation suite. ``check`` is called before each batch."""
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][1])
    out: list[list[int]] = [[] for _ in jobs]
    for start in range(0, len(order), batch_size):
        if check is not None:
            check()
        chunk = order[start:start + batch_size]
        generated = generate_ids(
            model, [jobs[i][0] for i in chunk], pad_token_id=pad_token_id_for(tokenizer),
            eos_token_id=tokenizer.eos_token_id, max_new_tokens=max(jobs[i][1] for i in chunk),
            batch_size=batch_size)
        for i, ids in zip(chunk, generated, strict=True):
            out[i] = ids[:jobs[i][1]]
    return out


@dataclass(frozen=True)
class Batches:
    """Rows per forward pass when scoring (teacher-forced) and when generating."""

    scoring: int = SCORING_BATCH
    generation: int = GENERATION_BATCH

    @classmethod
    def for_training_batch(cls, batch_size: int | None) -> Batches:
        """Sized from the run's training batch, so that a run that fits its steps fits these too."""
        if not batch_size:
            return cls()
        return cls(scoring=batch_size, generation=generation_rows(batch_size))


STOP_EL_N = 10  # the authors' EL_10
STOP_EL_WINDOW = 50  # their cut points: the last 50 of each 200-token sequence


def stop_cut_points(length: int) -> range:
    """Cut points t of the authors' EL_10: the last ``STOP_EL_WINDOW``, each leaving 10 true tokens."""
    return range(max(1, length - STOP_EL_WINDOW), length - STOP_EL_N + 1)


@dataclass
class Memorization:
    """MA and EL_10 of a set of records, as the authors measure them (MA pooled over positions,
    EL_10 averaged over the records that have a cut point), and of each record (EL NaN where it
    has none)."""

    ma: float
    el: float
    record_ma: list[float]
    record_el: list[float]


def memorization_scores(model, tokenizer, records: Sequence[Record], batches: Batches | None = None,
                        check: Check = None) -> Memorization:
    """MA from one teacher-forced pass; EL_10 from one greedy continuation per cut point."""
    batches = batches or Batches()
    predictions = teacher_forced_predictions(model, records, pad_token_id_for(tokenizer), batches.scoring, check)
    counts = [memorization.ma_counts(p, r.ids[1:]) for p, r in zip(predictions, records, strict=True)]
    total = sum(n for _, n in counts)
    ma = sum(h for h, _ in counts) / total if total else math.nan

    jobs, owners = [], []
    for index, record in enumerate(records):
        for t in stop_cut_points(len(record.ids)):
            jobs.append((record.ids[:t], len(record.ids) - t))
            owners.append(index)
    outputs = greedy_continuations(model, tokenizer, jobs, batches.generation, check)
    overlaps: dict[int, list[float]] = {i: [] for i in range(len(records))}
    for owner, (prompt, _), output in zip(owners, jobs, outputs, strict=True):
        overlap = memorization.ngram_overlap_unclipped(output, records[owner].ids[len(prompt):], STOP_EL_N)
        if overlap is not None:
            overlaps[owner].append(overlap)
    record_el = [sum(values) / len(values) if values else math.nan for values in overlaps.values()]
    measured = [value for value in record_el if not math.isnan(value)]
    el = sum(measured) / len(measured) if measured else math.nan
    return Memorization(ma, el, [h / n if n else math.nan for h, n in counts], record_el)


@dataclass
class Refinement:
    """One refinement pass: per-target scores and flags (1 = still reproduced, keep unlearning),
    and the set's MA and EL_10 (the authors' definitions)."""

    flags: list[int]
    bleu: list[float]
    f1: list[float]
    ma: float
    el: float

    @property
    def active(self) -> int:
        return sum(self.flags)


def refine(model, tokenizer, records: Sequence[Record], *, f1_threshold: float, bleu_threshold: float,
           keep_above: tuple[float, float] | None = None, batches: Batches | None = None,
           check: Check = None) -> Refinement:
    """Generate each target's continuation from its prefix, score it against the true suffix,
    flag the targets the model still reproduces, and measure MA and EL_10 of the set.

    ``keep_above = (ma, el)``: a target also stays active while its own MA or EL_10 is at or
    above these levels, although its continuation from the prefix has gone astray.
    """
    batches = batches or Batches()
    with evaluating(model) as inner:
        continuations = greedy_continuations(inner, tokenizer, [(r.prefix, len(r.suffix)) for r in records],
                                             batches.generation, check)
        scores = memorization_scores(inner, tokenizer, records, batches, check)
    bleus, f1s, flags = [], [], []
    for index, (record, generated) in enumerate(zip(records, continuations, strict=True)):
        produced = tokenizer.decode(generated, skip_special_tokens=True)
        truth = tokenizer.decode(record.suffix, skip_special_tokens=True)
        bleu = bleu4(bleu_tokens(produced), bleu_tokens(truth))
        f1 = token_f1(f1_tokens(produced), f1_tokens(truth))
        bleus.append(bleu)
        f1s.append(f1)
        active = not is_forgotten(bleu, f1, f1_threshold=f1_threshold, bleu_threshold=bleu_threshold)
        if keep_above is not None:
            # NaN (no cut point) compares False: such a record is kept by its MA alone.
            active = active or scores.record_ma[index] >= keep_above[0] or scores.record_el[index] >= keep_above[1]
        flags.append(int(active))
    return Refinement(flags, bleus, f1s, scores.ma, scores.el)
