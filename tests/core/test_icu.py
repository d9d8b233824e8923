"""ICU (core/methods/icu/): BLEU-4 and token F1, the forgotten rule and flags that come back,
the nearest non-target neighbour, skipped steps, stop conditions measured as the authors measure
them, resumable state, and short runs on a tiny llama through the runner."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import build_tiny_model

from unlearn_studio.core.data.templates import collate, pad_token_id_for
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.metrics import memorization
from unlearn_studio.core.events import LogEvent, StepEvent
from unlearn_studio.core.methods.base import MethodContext, all_terms, forward_logits
from unlearn_studio.core.methods.icu import method as icu_module
from unlearn_studio.core.methods.icu.method import shared_tokens
from unlearn_studio.core.methods.icu.neighbours import choose_neighbours, mean_pooled, nearest, own_embeddings
from unlearn_studio.core.methods.icu.refine import (
    Batches,
    Record,
    Refinement,
    bleu4,
    bleu_tokens,
    build_records,
    f1_tokens,
    greedy_continuations,
    is_forgotten,
    memorization_scores,
    refine,
    stop_cut_points,
    token_f1,
)
from unlearn_studio.core.methods.losses import mean_answer_ce
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.model.loading import attach_lora, load_model
from unlearn_studio.core.project.config import (
    DataSource,
    EvalConfig,
    LoraConfig,
    MethodConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    ScheduleConfig,
    TrainingConfig,
)
from unlearn_studio.core.run import runner
from unlearn_studio.core.run.data import RoleStream, load_roles, tokenize_roles

PROJECTS = Path(__file__).resolve().parents[2] / "projects"

FORGET = [
    {"id": "s/alice", "prefix": "Alice lives in", "text": "Alice lives in Paris and works as a baker."},
    {"id": "s/bob", "prefix": "Bob wrote", "text": "Bob wrote a saga about the dragon of Eldoria."},
    {"id": "s/secret", "prefix": "Numbers:", "text": "Numbers: 0 1 2 3 4 5 6 7 8 9, and secrets like XK-42."},
]
RETAIN = [
    {"text": "The quick brown fox jumps over the lazy dog."},
    {"text": "Unlearning removes knowledge from a language model."},
    {"text": "Alice lives in Paris and works as a baker."},  # a copy of a target: never a neighbour
    {"text": "The model should forget the saga but remember everything else."},
]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("icu") / "llama")


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path.name


def make_config(tmp_path: Path, tiny_dir: Path, params: dict, *, epochs: float = 2.0,
                holdout: bool = False) -> RunConfig:
    data = {"forget": DataSource(write_jsonl(tmp_path / "forget.jsonl", FORGET), template="raw"),
            "retain": DataSource(write_jsonl(tmp_path / "retain.jsonl", RETAIN), template="raw")}
    if holdout:
        data["holdout"] = DataSource(write_jsonl(tmp_path / "holdout.jsonl", RETAIN[:2]), template="raw")
    return RunConfig(
        name="tiny icu", model=ModelConfig(path=str(tiny_dir), dtype="fp32", device="cpu"), data=data,
        method=MethodConfig(name="icu", params=params),
        lora=LoraConfig(r=4, alpha=8.0, roles=["q", "v", "down"]),
        optimizer=OptimizerConfig(name="adam", lr=1e-2, weight_decay=0.0, betas=[0.9, 0.98]),
        schedule=ScheduleConfig(name="constant"),
        training=TrainingConfig(max_steps=None, epochs=epochs, batch_size=2, max_length=48, seed=0),
        evaluation=EvalConfig(suite="none"), base_dir=tmp_path,
    )


@pytest.fixture
def context(tmp_path, tiny_dir) -> MethodContext:
    """The tiny llama with a fresh LoRA adapter and the forget and retain roles loaded."""
    config = make_config(tmp_path, tiny_dir, {})
    data = load_roles(config, ["forget", "retain"])
    loaded = load_model(tiny_dir, device="cpu")
    torch.manual_seed(0)
    model = attach_lora(loaded.model, r=4, alpha=8)
    tokenize_roles(config, data, loaded.tokenizer)
    return MethodContext(model, loaded.tokenizer, torch.device("cpu"), data=data)


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def logs(self) -> list[str]:
        return [e.message for e in self.events if isinstance(e, LogEvent)]

    def steps(self) -> list[StepEvent]:
        return [e for e in self.events if isinstance(e, StepEvent)]


# ---- BLEU-4, token F1, the forgotten rule --------------------------------------------------------


def test_bleu4_on_hand_made_cases():
    reference = ["the", "cat", "sat", "on", "a", "mat"]
    assert bleu4(reference, reference) == pytest.approx(1.0)
    # p1..p4 = 5/6, 3/5, 2/4, 1/3; same length, so no brevity penalty.
    assert bleu4(["the", "cat", "sat", "on", "the", "mat"], reference) == pytest.approx((1 / 12) ** 0.25)
    # All n-grams match but the candidate is short: BP = exp(1 - 6/4).
    assert bleu4(["the", "cat", "sat", "on"], reference) == pytest.approx(math.exp(-0.5))
    # Words shared, but no 4-gram in common: 0 (no smoothing).
    assert bleu4(["a", "mat", "the", "cat", "on", "sat"], reference) == 0.0
    assert bleu4([], reference) == 0.0


def test_bleu4_agrees_with_nltk_sentence_bleu():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    cases = [("the cat sat on the mat today", "the cat sat on a mat"),
             ("7q - 5151 - basalt , ledger 70081 , passphrase morning silver harbour .",
              "7q - 5151 - basalt , ledger 70081 , passphrase willow copper seven ."),
             ("one two three four five", "one two three four five six seven eight")]
    for candidate, reference in cases:
        expected = nltk_bleu.sentence_bleu([reference.split()], candidate.split())
        assert bleu4(candidate.split(), reference.split()) == pytest.approx(expected, rel=1e-9)


def test_tokens_for_bleu_and_f1():
    assert bleu_tokens("Vault 7Q-51, ledger.") == ["vault", "7q", "-", "51", ",", "ledger", "."]
    assert f1_tokens("Vault 7Q-51, ledger.") == ["vault", "7q", "51", "ledger"]


def test_token_f1_on_hand_made_cases():
    # 2 shared of 3 and 4 tokens: P = 2/3, R = 1/2, F1 = 4/7.
    shared_two = token_f1(f1_tokens("morning silver harbour"), f1_tokens("silver harbour, ember salt."))
    assert shared_two == pytest.approx(4 / 7)
    assert token_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx(2 / 3)  # multiset overlap
    assert token_f1([], ["a"]) == 0.0 and token_f1(["a"], []) == 0.0
    assert token_f1(["x"], ["y"]) == 0.0


@pytest.mark.parametrize("bleu, f1, forgotten", [(0.5, 0.8, False), (0.005, 0.8, True), (0.5, 0.2, True),
                                                 (0.01, 0.3, False)])
def test_forgotten_when_f1_or_bleu_is_below_its_threshold(bleu, f1, forgotten):
    assert is_forgotten(bleu, f1, f1_threshold=0.3, bleu_threshold=0.01) is forgotten


# ---- records, refinement, MA and EL on a real (tiny) model ---------------------------------------


def test_records_split_at_the_files_prefix(context):
    records = build_records(context.data["forget"], context.tokenizer, prefix_tokens=50)
    tokenizer = context.tokenizer
    for record, row in zip(records, FORGET):
        assert record.ids == tokenizer(row["text"])["input_ids"]
        assert record.prefix == tokenizer(row["prefix"])["input_ids"]
    # Rows without a prefix field: the first prefix_tokens tokens, at most half the text.
    plain = build_records(context.data["retain"], tokenizer, prefix_tokens=3)
    assert [r.n_prefix for r in plain] == [min(3, len(r.ids) // 2) for r in plain]


def own_continuation_records(context, n_new: int = 12) -> list[Record]:
    """Records whose suffix is the model's own greedy continuation of the prefix: memorized
    verbatim as far as the model is concerned."""
    prefixes = [context.tokenizer(row["prefix"])["input_ids"] for row in FORGET]
    context.model.eval()
    generated = greedy_continuations(context.model, context.tokenizer, [(p, n_new) for p in prefixes])
    return [Record(p + g, len(p)) for p, g in zip(prefixes, generated) if len(g) >= 8]


def test_a_record_the_model_reproduces_is_active(context):
    own = own_continuation_records(context)
    assert own, "the tiny model stopped at EOS at once; pick other prefixes"
    result = refine(context.model, context.tokenizer, own, f1_threshold=0.3, bleu_threshold=0.01)
    assert result.flags == [1] * len(own)
    assert result.bleu == pytest.approx([1.0] * len(own)) and result.f1 == pytest.approx([1.0] * len(own))


def test_a_sequence_the_model_produces_whole_has_ma_and_el_of_one(context):
    """The stop rule's MA covers every position and EL_10 every one of the last 50 cut points: a
    record that is the model's own greedy text from its first token on scores 1 on both."""
    context.model.eval()
    start = [context.tokenizer("The")["input_ids"][0]]
    generated = greedy_continuations(context.model, context.tokenizer, [(start, 24)])[0]
    assert len(generated) >= 12, "the tiny model stopped at EOS early; pick another first token"
    record = Record(start + generated, 1)
    scores = memorization_scores(context.model, context.tokenizer, [record])
    assert scores.ma == pytest.approx(1.0) and scores.el == pytest.approx(1.0)


def test_the_stop_rule_counts_as_the_authors_code():
    # Their 200-token sequences: cut points 150..190 (the last 50 leaving 10 true tokens), 41 of them.
    assert stop_cut_points(200) == range(150, 191) and len(stop_cut_points(200)) == 41
    assert stop_cut_points(30) == range(1, 21) and len(stop_cut_points(10)) == 0
    # A continuation that loops over one true 10-gram: every repeat counts (unclipped), which the
    # evaluation suite's clipped overlap does not.
    truth = list(range(20))
    looping = list(range(10)) * 3
    assert memorization.ngram_overlap_unclipped(looping, truth, 10) == pytest.approx(3 / 11)
    assert memorization.ngram_overlap(looping, truth, 10) == pytest.approx(1 / 11)
    assert memorization.ngram_overlap_unclipped([1, 2], [1, 2, 3], 10) is None


def test_a_record_the_model_does_not_reproduce_is_forgotten(context):
    records = build_records(context.data["forget"], context.tokenizer, prefix_tokens=50)
    result = refine(context.model, context.tokenizer, records, f1_threshold=0.3, bleu_threshold=0.01)
    assert result.flags == [0, 0, 0]  # a random tiny model knows none of the true suffixes
    scores = memorization_scores(context.model, context.tokenizer, records)
    assert (scores.ma, scores.el) == (pytest.approx(result.ma), pytest.approx(result.el))
    assert 0 <= result.ma < 0.5 and 0 <= result.el < 0.5
    positions = [len(r.ids) - 1 for r in records]  # every token after the first: the authors' MA
    assert scores.ma == pytest.approx(sum(m * n for m, n in zip(scores.record_ma, positions)) / sum(positions))
    # flag_by_memorization: a target also stays active while its own MA or EL is at a level.
    kept = refine(context.model, context.tokenizer, records, f1_threshold=0.3, bleu_threshold=0.01,
                  keep_above=(0.0, 2.0))
    assert kept.flags == [1, 1, 1]
    above_all = refine(context.model, context.tokenizer, records, f1_threshold=0.3, bleu_threshold=0.01,
                       keep_above=(1.01, 1.01))
    assert above_all.flags == [0, 0, 0]


def test_refinement_batches_follow_the_training_batch_and_do_not_change_the_result(context):
    assert Batches.for_training_batch(4) == Batches(scoring=4, generation=32)
    assert Batches.for_training_batch(None) == Batches()
    records = build_records(context.data["forget"], context.tokenizer, prefix_tokens=50)
    whole = refine(context.model, context.tokenizer, records, f1_threshold=0.3, bleu_threshold=0.01)
    one_by_one = refine(context.model, context.tokenizer, records, f1_threshold=0.3, bleu_threshold=0.01,
                        batches=Batches(scoring=1, generation=1))
    assert one_by_one.flags == whole.flags and one_by_one.bleu == pytest.approx(whole.bleu)
    assert (one_by_one.ma, one_by_one.el) == (pytest.approx(whole.ma), pytest.approx(whole.el))


# ---- flags across epochs --------------------------------------------------------------------------


def scripted_refinements(monkeypatch, script: list[tuple[list[int], float, float]]) -> None:
    """Make the method's refinement return (flags, MA, EL) from ``script``, one per call."""
    calls = iter(script)

    def fake_refine(model, tokenizer, records, **_):
        flags, ma, el = next(calls)
        return Refinement(flags, [0.5] * len(flags), [0.5] * len(flags), ma, el)

    monkeypatch.setattr(icu_module, "refine", fake_refine)


def prepared(context, params=None):
    method = get_method("icu")(params or {})
    logs, reports = [], []
    context._log = lambda level, message: logs.append(message)
    context._report = reports.append
    method.prepare(context, {})
    return method, logs, reports


def test_flags_follow_each_refinement_and_forgotten_targets_come_back(context, monkeypatch):
    scripted_refinements(monkeypatch, [([1, 1, 1], 1.0, 1.0), ([0, 1, 0], 0.9, 0.8), ([1, 1, 0], 0.9, 0.8)])
    method, logs, reports = prepared(context)
    assert method.flags == [1, 1, 1] and "3/3 targets still reproduced" in logs[-1]
    assert method.on_epoch_end(context, 1) is False
    assert method.flags == [0, 1, 0] and "active: s/bob" in logs[-1]
    assert method.on_epoch_end(context, 2) is False
    assert method.flags == [1, 1, 0]
    assert "reproduced again: s/alice" in logs[-1]
    assert reports[-1]["icu/active_targets"] == 2 and reports[-1]["icu/ma"] == 0.9
    assert [h["active"] for h in method.history] == [3, 1, 2]


def test_steps_use_only_active_targets_and_skip_when_none(context, monkeypatch):
    scripted_refinements(monkeypatch, [([0, 1, 0], 1.0, 1.0)])
    method, _, _ = prepared(context)
    stream = RoleStream("forget", context.data["forget"].examples, 3, 0, context.tokenizer.eos_token_id)
    batch = stream.next_batch()
    terms = all_terms(method.loss_terms(context, {"forget": batch}))
    assert set(terms) == {"unlearn", "neighbour", "kl"}
    assert all(t.requires_grad for t in terms.values()) and terms["unlearn"].item() < 0
    assert terms["kl"].item() == pytest.approx(0.0, abs=1e-6)  # a fresh adapter changes nothing yet

    method.flags = [0, 0, 0]
    skipped = all_terms(method.loss_terms(context, {"forget": batch}))
    assert set(skipped) == {"unlearn", "neighbour", "kl"}
    assert all(not t.requires_grad and float(t) == 0.0 for t in skipped.values())


def test_unlearn_span_suffix_leaves_the_prefix_out_of_the_ascent(context, monkeypatch):
    scripted_refinements(monkeypatch, [([1, 1, 1], 1.0, 1.0)] * 2)
    stream = RoleStream("forget", context.data["forget"].examples, 3, 0, context.tokenizer.eos_token_id)
    batch = stream.next_batch()
    whole, _, _ = prepared(context)
    suffix, _, _ = prepared(context, {"unlearn_span": "suffix"})
    labels = batch.labels.clone()
    for i, row in enumerate(batch.extra["index"].tolist()):
        labels[i, :suffix.records[row].n_prefix] = -100
    with torch.no_grad():
        logits = forward_logits(context.model, batch)
        expected_whole = -mean_answer_ce(logits, batch.labels)
        expected_suffix = -mean_answer_ce(logits, labels)
        assert all_terms(whole.loss_terms(context, {"forget": batch}))["unlearn"] == pytest.approx(float(expected_whole))
        assert all_terms(suffix.loss_terms(context, {"forget": batch}))["unlearn"] == pytest.approx(
            float(expected_suffix))
    assert float(expected_whole) != pytest.approx(float(expected_suffix))


def test_shared_tokens_are_those_of_half_the_records_or_more():
    examples = [{"input_ids": [1, 5, 6, 2]}, {"input_ids": [1, 7, 6, 6, 2]}, {"input_ids": [1, 8, 9, 2]},
                {"input_ids": [1, 5, 9]}]
    assert shared_tokens(examples) == {1, 2, 5, 6, 9}
    assert shared_tokens(examples, share=0.75) == {1, 2}
    assert shared_tokens(examples[:1]) == set()


def test_unlearn_span_distinct_leaves_the_prefix_and_the_shared_template_out_of_the_ascent(context, monkeypatch):
    scripted_refinements(monkeypatch, [([1, 1, 1], 1.0, 1.0)])
    stream = RoleStream("forget", context.data["forget"].examples, 3, 0, context.tokenizer.eos_token_id)
    batch = stream.next_batch()
    distinct, _, _ = prepared(context, {"unlearn_span": "distinct"})
    shared = shared_tokens(context.data["retain"].examples)
    assert shared and distinct.shared_tokens == shared
    labels = batch.labels.clone()
    for i, row in enumerate(batch.extra["index"].tolist()):
        labels[i, :distinct.records[row].n_prefix] = -100
        labels[i, [t in shared for t in labels[i].tolist()]] = -100
    assert (labels != -100).any() and ((labels != -100) != (batch.labels != -100)).any()
    with torch.no_grad():
        expected = -mean_answer_ce(forward_logits(context.model, batch), labels)
        assert all_terms(distinct.loss_terms(context, {"forget": batch}))["unlearn"] == pytest.approx(float(expected))


# ---- neighbours -----------------------------------------------------------------------------------


def test_nearest_is_by_cosine_and_never_an_excluded_row():
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pool = torch.tensor([[10.0, 10.0], [0.9, 0.1], [1.0, 0.0], [0.1, 0.9]])
    excluded = torch.tensor([[False, False, True, False]] * 2)
    # Target 0: row 2 is identical but excluded; row 1 (cosine 0.99) beats row 0 (larger dot product).
    assert nearest(targets, pool, excluded) == [1, 3]
    with pytest.raises(UserError, match="neighbour pool"):
        nearest(targets, pool, torch.ones(2, 4, dtype=torch.bool))


def test_neighbours_are_retain_rows_other_than_the_targets(context, tiny_dir):
    own = choose_neighbours(context)
    assert len(own) == len(FORGET) and all(0 <= i < len(RETAIN) for i in own)
    assert 2 not in own  # the retain copy of Alice's record is a target, not a neighbour
    # Another model's folder as the embedding model gives neighbours too (the same ones here:
    # it is the same tiny network, without the adapter).
    assert choose_neighbours(context, str(tiny_dir)) == own
    with pytest.raises(UserError, match="embedding_model"):
        choose_neighbours(context, str(tiny_dir / "missing"))


def test_own_embeddings_are_the_adapter_off_last_hidden_states_mean_pooled(context):
    examples = context.data["forget"].examples
    with torch.no_grad():
        for lora in (p for n, p in context.model.named_parameters() if "lora_B" in n):
            lora.normal_(std=0.5)  # the adapter changes the model, and must not count
    pad = pad_token_id_for(context.tokenizer)
    with context.original_model() as original:
        embedded = own_embeddings(original, examples, pad, torch.device("cpu"))
        batch = collate(list(examples), pad)
        hidden = original(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(embedded, mean_pooled(hidden, batch["attention_mask"]))


# ---- stop conditions and state --------------------------------------------------------------------


@pytest.mark.parametrize("ma, el, flags, stops", [
    (0.4, 0.01, [1, 1, 1], True),   # both below the thresholds
    (0.4, 0.2, [1, 1, 1], False),   # EL still high
    (0.7, 0.01, [1, 1, 1], False),  # MA still high
    (0.9, 0.9, [0, 0, 0], True),    # nothing reproduced any more
])
def test_stop_conditions(context, monkeypatch, ma, el, flags, stops):
    scripted_refinements(monkeypatch, [([1, 1, 1], 1.0, 1.0), (flags, ma, el)])
    method, _, _ = prepared(context, {"ma_threshold": 0.5, "el_threshold": 0.05})
    assert method.on_epoch_end(context, 1) is stops


def test_state_dict_round_trip(context, monkeypatch):
    scripted_refinements(monkeypatch, [([1, 0, 1], 1.0, 1.0), ([1, 0, 1], 1.0, 1.0)])
    method, _, _ = prepared(context, {"ma_threshold": 0.25})
    state = json.loads(json.dumps(method.state_dict()))  # JSON-serialisable, as checkpoints need
    fresh, _, _ = prepared(context)
    fresh.flags = [0, 0, 0]
    fresh.load_state_dict(state)
    assert fresh.state_dict() == method.state_dict()
    assert fresh.flags == [1, 0, 1] and fresh.thresholds == (0.25, 0.0499)
    with pytest.raises(UserError, match="3 rows"):
        fresh.load_state_dict({**state, "flags": [1, 0]})


# ---- whole runs on the tiny model -----------------------------------------------------------------


def lora_b_is_zero(adapter_dir: Path) -> bool:
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    return all(not value.any() for name, value in weights.items() if "lora_B" in name)


@pytest.mark.slow
def test_a_run_with_nothing_to_forget_skips_every_step_and_ends_after_one_epoch(tmp_path, tiny_dir):
    events = Recorder()
    never_low_enough = {"ma_threshold": 0.0, "el_threshold": 0.0}  # so only "no target active" ends it
    result = runner.execute(make_config(tmp_path, tiny_dir, never_low_enough, epochs=5), listener=events)
    # The random tiny model reproduces no target: every step is skipped, the adapter stays zero.
    assert result.status == "finished" and result.steps == 2  # 3 targets in batches of 2
    assert lora_b_is_zero(result.adapter_dir)
    assert any("reproduces none of the forget targets" in m for m in events.logs())
    assert any("no target is reproduced any more" in m for m in events.logs())
    assert all(e.losses["loss/total"] == 0.0 for e in events.steps())


@pytest.mark.slow
def test_a_short_run_trains_on_active_targets_and_streams_its_terms(tmp_path, tiny_dir):
    # Thresholds of 0 count every target as reproduced, and a stop below MA/EL 0 never comes.
    params = {"f1_threshold": 0.0, "bleu_threshold": 0.0, "ma_threshold": 0.0, "el_threshold": 0.0}
    events = Recorder()
    result = runner.execute(make_config(tmp_path, tiny_dir, params, epochs=2), listener=events)
    assert result.status == "finished" and result.steps == 4  # the epoch cap
    assert not lora_b_is_zero(result.adapter_dir)
    steps = events.steps()
    assert set(steps[0].losses) == {"loss/unlearn", "loss/neighbour", "loss/kl", "loss/total"}
    assert steps[0].losses["loss/unlearn"] < 0
    assert steps[0].extra["icu/active_targets"] == 3 and "icu/el" in steps[-1].extra
    logs = events.logs()
    assert any("before epoch 1: 3/3 targets" in m for m in logs)
    assert any("after epoch 2" in m for m in logs)


@pytest.mark.slow
def test_a_run_ends_once_the_targets_are_below_the_thresholds(tmp_path, tiny_dir):
    params = {"f1_threshold": 0.0, "bleu_threshold": 0.0, "ma_threshold": 1.0, "el_threshold": 1.0}
    events = Recorder()
    result = runner.execute(make_config(tmp_path, tiny_dir, params, epochs=5), listener=events)
    assert result.status == "finished" and result.steps == 2  # after epoch 1, not at the cap of 10
    assert any("at the level of unseen text" in m for m in events.logs())


@pytest.mark.slow
def test_calibrate_takes_the_thresholds_from_the_holdout_records(tmp_path, tiny_dir):
    events = Recorder()
    config = make_config(tmp_path, tiny_dir, {"calibrate": True}, epochs=1, holdout=True)
    assert runner.execute(config, listener=events).status == "finished"
    assert any("(the original model on the holdout records)" in m for m in events.logs())
    without = make_config(tmp_path, tiny_dir, {"calibrate": True}, epochs=1)
    failed = runner.execute(without, listener=events)
    assert failed.status == "failed" and "holdout" in failed.error


# ---- declarations and project files ---------------------------------------------------------------


def test_declarations_are_complete():
    cls = get_method("icu")
    assert cls.terms == ("unlearn", "neighbour", "kl")
    assert cls.roles.required == ("forget", "retain") and cls.roles.optional == ("holdout",)
    doc = sys.modules[cls.__module__].__doc__
    assert "arXiv 2407.20271" in cls.paper and "arXiv 2407.20271" in doc and "differ" in doc
    for h in cls.hyperparameters:
        assert h.help and h.source
        assert h.check(h.default, cls.title) == h.default
    assert cls.check_params({})["ma_threshold"] == 0.5994 and cls.check_params({})["el_threshold"] == 0.0499


@pytest.mark.parametrize("name", ("icu", "icu_demo"))
def test_project_files_load_and_their_parameters_check(name):
    config = RunConfig.load(PROJECTS / f"{name}.toml")
    cls = get_method(config.method.name)
    assert cls.name == "icu"
    cls(config.method.params)
    cls.check_roles(set(config.data))
    assert config.model.is_demo and config.evaluation.suite == "fast" and config.evaluation.reference_model == "demo"
    assert config.training.epochs is not None  # the cap: an epoch is a pass over the targets
    text = (PROJECTS / f"{name}.toml").read_text(encoding="utf-8")
    assert text.startswith("#") and "arXiv 2407.20271" in text.split("\n\n")[0]
    if name == "icu":
        assert cls.check_params(config.method.params) == cls.check_params({})
        assert config.optimizer.lr == 5e-6 and config.optimizer.betas == [0.9, 0.98]
        assert config.training.batch_size == 8
