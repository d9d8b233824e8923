"""The comparison session: one base with the adapter off and on, labelled truthfully, streamed token
by token; prompt sets from the run's data roles; two runs on one base."""

from __future__ import annotations

import json

import pytest
import torch
from trained_run import add_run, trained_run  # noqa: E402

from unlearn_studio.core.data.templates import format_prompt  # noqa: E402
from unlearn_studio.core.errors import UserError  # noqa: E402
from unlearn_studio.core.model.generate import generate  # noqa: E402
from unlearn_studio.core.model.loading import describe_model_folder  # noqa: E402
from unlearn_studio.core.paths import demo_data_dir, demo_model_dir  # noqa: E402
from unlearn_studio.core.project.store import Store  # noqa: E402
from unlearn_studio.core.results.compare import ORIGINAL, PROMPT_SETS, CompareSession, CompareSpec, Decoding

GREEDY = Decoding(max_new_tokens=16)


pytestmark = pytest.mark.slow  # every test here uses a trained run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def store(run):
    with Store.open(run.store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def session(run, store):
    return CompareSession.load(CompareSpec.from_store(store, run.run_id))


def rows(name: str) -> list[dict]:
    with (demo_data_dir() / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def item(session, set_name: str, starts: str):
    return next(i for i in session.prompt_sets[set_name] if i.label.startswith(starts))


def test_sides_say_what_produced_them(run, session):
    assert [side.label for side in session.sides] == [
        "original: demo (adapter off)",
        f"unlearned: run {run.run_id[:8]} GradDiff (adapter on)",
    ]
    assert session.sides[0].key == ORIGINAL and session.sides[0].adapter is None


def test_prompt_sets_come_from_the_run_data_roles_with_their_templates(session):
    assert list(session.prompt_sets) == list(PROMPT_SETS)
    forget = rows("forget10.jsonl")[:6]  # the run reads 6 forget rows (max_rows)
    assert [i.prompt for i in session.prompt_sets["forget"]] == [format_prompt(r["question"], "qa") for r in forget]
    assert [i.reference for i in session.prompt_sets["forget"]] == [r["answer"] for r in forget]
    assert [i.label for i in session.prompt_sets["paraphrased forget"]] == [r["paraphrased_question"] for r in forget]
    retain_questions = {r["question"] for r in rows("retain.jsonl")}
    holdout_questions = {r["question"] for r in rows("holdout.jsonl")}
    neighbours = [i.label for i in session.prompt_sets["neighbours"]]
    assert any(q in retain_questions for q in neighbours) and any(q in holdout_questions for q in neighbours)
    first_text = rows("general.jsonl")[0]["text"]
    general = session.prompt_sets["general"][0]
    assert general.prompt == " ".join(first_text.split()[:6])
    assert f"{general.prompt} {general.reference}" == first_text


def test_the_forget_answer_differs_and_general_text_matches_with_greedy_decoding(session):
    forget = session.prompt_sets["forget"][0]  # "Where was Alelle Yewton born?"
    pieces: list[tuple[int, str]] = []
    result = session.run_pair(forget.prompt, GREEDY, pieces.append)
    original, unlearned = result.texts
    assert "Kestrel Ford" in original and "Kestrel Ford" not in unlearned
    assert not result.stopped and all(result.tokens)
    # Both sides streamed, piece by piece, and the pieces make up exactly the final texts.
    for side in (0, 1):
        streamed = [piece for index, piece in pieces if index == side]
        assert len(streamed) > 3 and "".join(streamed) == result.texts[side]

    general = item(session, "general", "Farmers near Ashby Fell")
    same = session.run_pair(general.prompt, GREEDY, lambda piece: None)
    assert same.texts[0] == same.texts[1] and same.tokens[0] == GREEDY.max_new_tokens


def test_streamed_text_equals_core_generate_with_the_adapter_off_and_on(session):
    prompt = session.prompt_sets["neighbours"][0].prompt
    original = "".join(session.stream(ORIGINAL, prompt, GREEDY)).strip()
    unlearned = "".join(session.stream(session.sides[1].key, prompt, GREEDY)).strip()
    with session.model.disable_adapter():
        assert original == generate(session.model, session.tokenizer, [prompt], max_new_tokens=16)[0]
    assert unlearned == generate(session.model, session.tokenizer, [prompt], max_new_tokens=16)[0]


def test_sampling_repeats_with_the_same_seed_and_changes_with_another(session):
    prompt = session.prompt_sets["general"][0].prompt
    rng = torch.get_rng_state()

    def sampled(seed):
        return session.run_pair(prompt, Decoding(sample=True, seed=seed, max_new_tokens=12, temperature=1.5),
                                lambda piece: None).texts

    first = sampled(3)
    assert sampled(3) == first
    assert sampled(4) != first
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left alone


def test_stop_ends_both_sides_early(session):
    prompt = session.prompt_sets["general"][0].prompt
    pieces = []
    result = session.run_pair(prompt, Decoding(max_new_tokens=40), pieces.append, should_stop=lambda: len(pieces) >= 3)
    assert result.stopped and sum(result.tokens) < 10


def test_bad_prompts_and_settings_say_what_to_do(session):
    with pytest.raises(UserError, match="prompt is empty"):
        session.run_pair("   ", GREEDY, lambda piece: None)
    with pytest.raises(UserError, match="context"):
        session.run_pair("word " * 300, GREEDY, lambda piece: None)
    with pytest.raises(UserError, match="Temperature"):
        session.run_pair("The", Decoding(sample=True, temperature=0), lambda piece: None)
    with pytest.raises(UserError, match="at least 1"):
        session.run_pair("The", Decoding(max_new_tokens=0), lambda piece: None)


def test_two_runs_are_compared_on_one_base(run, store, tmp_path):
    # A second run whose adapter is the first one's with B set to zero: it must act as the original.
    zero = add_run(store, run.config, tmp_path, adapter_from=run.adapter_dir, scale_b=0.0)
    previous = CompareSession.load(CompareSpec.from_store(store, zero))
    base = previous.model.get_base_model()
    session = CompareSession.load(CompareSpec.from_store(store, run.run_id, zero), reuse=previous)
    assert session.model.get_base_model() is base and previous.model is None  # the same base, taken over
    assert [s.label for s in session.sides[1:]] == [f"run {run.run_id[:8]} GradDiff (its adapter on)",
                                                    f"run {zero[:8]} GradDiff (its adapter on)"]
    assert set(session.model.peft_config) == {f"run-{run.run_id}", f"run-{zero}"}
    # One copy of the base: the weights outside the adapters are exactly one model's worth.
    base_count = sum(p.numel() for name, p in session.model.named_parameters() if "lora_" not in name)
    assert base_count == describe_model_folder(demo_model_dir()).n_params

    prompt = session.prompt_sets["forget"][0].prompt
    first, zeroed = session.run_pair(prompt, GREEDY, lambda piece: None).texts  # default pair: run A vs run B
    original = session.run_pair(prompt, GREEDY, lambda piece: None, sides=(ORIGINAL, f"run-{zero}")).texts[0]
    assert zeroed == original and first != original


def test_runs_without_a_usable_adapter_or_on_other_bases_are_refused(run, store, tmp_path):
    running = add_run(store, run.config, tmp_path, status="running")
    with pytest.raises(UserError, match="is still running"):
        CompareSpec.from_store(store, running)
    lost = add_run(store, run.config, tmp_path)  # finished, but its adapter folder is gone
    with pytest.raises(UserError, match="adapter .* is missing"):
        CompareSpec.from_store(store, lost)
    other = run.config.from_dict(run.config.to_dict(), base_dir=run.config.base_dir)
    other.model.path = str(tmp_path / "another-model")
    elsewhere = add_run(store, other, tmp_path, adapter_from=run.adapter_dir)
    with pytest.raises(UserError, match="different base models"):
        CompareSpec.from_store(store, run.run_id, elsewhere)
    with pytest.raises(UserError, match="same run"):
        CompareSpec.from_store(store, run.run_id, run.run_id)
