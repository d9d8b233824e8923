"""The shipped demo: its files match a fresh build, its models know what REPORT.json says they know."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearn_studio.core.demo import build as demo_build
from unlearn_studio.core.demo.build import TARGETS, build_demo
from unlearn_studio.core.demo.corpus import read_jsonl, tokenizer_texts
from unlearn_studio.core.demo.report import chance_value_accuracy, measure_full_model, value_accuracy
from unlearn_studio.core.demo.tokenizer import train_tokenizer
from unlearn_studio.core.demo.train import DemoModelShape, TrainSchedule
from unlearn_studio.core.demo.world import generate_world, write_world
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.files import MARKER, mark_as_own, own_kind
from unlearn_studio.core.paths import demo_dir

SHIPPED = demo_dir()
REPORT = json.loads((SHIPPED / "REPORT.json").read_text(encoding="utf-8"))
TINY_SHAPE = DemoModelShape(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1)
SMOKE_SCHEDULE = TrainSchedule(epochs=1, batch_size=32, warmup_steps=2, max_steps=3)


def _load(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(), tokenizer


@pytest.fixture(scope="module")
def shipped_model():
    return _load(SHIPPED / "model")


def test_shipped_data_matches_a_fresh_build(tmp_path):
    write_world(generate_world(REPORT["seed"]), tmp_path)
    fresh = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    shipped = {p.name: p.read_bytes() for p in (SHIPPED / "data").iterdir()}
    assert sorted(fresh) == sorted(shipped)
    assert [name for name in fresh if fresh[name] != shipped[name]] == []


def test_shipped_tokenizer_matches_a_fresh_training(tmp_path):
    train_tokenizer(tokenizer_texts(SHIPPED / "data")).save_pretrained(tmp_path)
    fresh = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    for folder in ("model", "retain_model"):
        assert json.loads((SHIPPED / folder / "tokenizer.json").read_text(encoding="utf-8")) == fresh


def test_shipped_demo_fits_the_size_budget():
    total = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert total <= 30 * 2**20, f"resources/demo holds {total / 2**20:.1f} MiB"


@pytest.mark.slow
def test_shipped_model_meets_its_targets_and_its_report(shipped_model):
    model, tokenizer = shipped_model
    measured = measure_full_model(model, tokenizer, SHIPPED / "data")
    for key, (_, bound) in TARGETS.items():
        assert measured[key] >= bound, f"{key} = {measured[key]:.3f}, target >= {bound}"
    for key, value in REPORT["model"].items():
        assert measured[key] == pytest.approx(value, rel=0.02, abs=0.01), key


@pytest.mark.slow
def test_shipped_model_does_not_know_the_holdout_persons(shipped_model):
    model, tokenizer = shipped_model
    holdout = read_jsonl(SHIPPED / "data" / "holdout.jsonl")
    trained = read_jsonl(SHIPPED / "data" / "retain.jsonl")
    assert value_accuracy(model, tokenizer, holdout) <= chance_value_accuracy(holdout, trained) + 0.1


@pytest.mark.slow
def test_retain_model_is_at_chance_on_forget10():
    model, tokenizer = _load(SHIPPED / "retain_model")
    forget10 = read_jsonl(SHIPPED / "data" / "forget10.jsonl")
    retain = read_jsonl(SHIPPED / "data" / "retain.jsonl")
    chance = chance_value_accuracy(forget10, retain)
    assert value_accuracy(model, tokenizer, forget10) <= chance + 0.1
    assert value_accuracy(model, tokenizer, retain[:300]) >= 0.9  # it does know the persons it was trained on


@pytest.mark.slow
def test_build_is_bit_for_bit_and_loads_with_auto_classes(tmp_path):
    reports = [build_demo(tmp_path / name, seed=3, shape=TINY_SHAPE, schedule=SMOKE_SCHEDULE,
                          continuation=SMOKE_SCHEDULE, log=lambda _: None) for name in ("first", "second")]
    for folder in ("model", "retain_model"):
        first = load_file(tmp_path / "first" / folder / "model.safetensors")
        second = load_file(tmp_path / "second" / folder / "model.safetensors")
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)
        model, tokenizer = _load(tmp_path / "first" / folder)
        assert model.config.model_type == "llama"
        assert model.config.num_key_value_heads < model.config.num_attention_heads  # grouped-query k/v
        assert tokenizer.decode(tokenizer("Thornwick market")["input_ids"], skip_special_tokens=True) == "Thornwick market"
    assert reports[0]["model"] == reports[1]["model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second"]  # no staging folders left
    assert own_kind(tmp_path / "first") == "demo"
    # The full model went on from the retain model: trained further, so its weights differ.
    retain = load_file(tmp_path / "first" / "retain_model" / "model.safetensors")
    full = load_file(tmp_path / "first" / "model" / "model.safetensors")
    assert any(not torch.equal(retain[k], full[k]) for k in retain)
    assert reports[0]["continuation"]["max_steps"] == SMOKE_SCHEDULE.max_steps


def test_failed_build_keeps_the_existing_demo(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    out.mkdir()
    mark_as_own(out, "demo")  # an earlier demo build
    (out / "REPORT.json").write_text('{"kept": true}', encoding="utf-8")

    def broken_training(*args, **kwargs):
        raise RuntimeError("training interrupted")

    monkeypatch.setattr(demo_build, "train_language_model", broken_training)
    with pytest.raises(RuntimeError):
        build_demo(out, seed=0, shape=TINY_SHAPE, schedule=SMOKE_SCHEDULE, log=lambda _: None, overwrite=True)
    assert json.loads((out / "REPORT.json").read_text(encoding="utf-8")) == {"kept": True}
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "REPORT.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging folder left


def test_a_folder_the_app_did_not_write_is_refused_before_the_build_starts(tmp_path, monkeypatch):
    """The defect: `demo build --out DIR` removed DIR whatever it held once the build succeeded."""
    out = tmp_path / "thesis"
    (out / "chapters").mkdir(parents=True)
    (out / "thesis.txt").write_text("mine")
    (out / "chapters" / "one.txt").write_text("also mine")
    monkeypatch.setattr(demo_build, "train_language_model", lambda *a, **k: pytest.fail("the build started"))
    for overwrite in (False, True):
        with pytest.raises(UserError, match="did not write: chapters/, thesis.txt"):
            build_demo(out, seed=0, shape=TINY_SHAPE, schedule=SMOKE_SCHEDULE, log=lambda _: None,
                       overwrite=overwrite)
    assert (out / "thesis.txt").read_text() == "mine" and (out / "chapters" / "one.txt").read_text() == "also mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_the_shipped_demo_carries_the_marker_so_make_demo_may_rebuild_it():
    assert own_kind(SHIPPED) == "demo"


def test_each_epoch_takes_the_next_phrasing_pairs_and_every_pair_comes_round():
    from unlearn_studio.core.demo.corpus import person_fact_documents, phrasing_pairs, qa_text

    row = {"train_questions": ["Q0", "Q1", "Q2"], "train_answers": ["A0", "A1", "A2"]}
    assert sorted(phrasing_pairs()) == [(q, a) for q in range(3) for a in range(3)]
    # Three a fact per epoch: every question phrasing once, the answers rotating (the shipped recipe).
    assert person_fact_documents([row], 0) == [qa_text(q, a) for q, a in (("Q0", "A0"), ("Q1", "A1"), ("Q2", "A2"))]
    assert person_fact_documents([row], 1) == [qa_text(q, a) for q, a in (("Q0", "A1"), ("Q1", "A2"), ("Q2", "A0"))]
    for per_fact, epochs in ((3, 3), (2, 9), (1, 9)):
        seen = {doc for epoch in range(epochs) for doc in person_fact_documents([row], epoch, per_fact)}
        assert len(seen) == 9, per_fact
        assert all(len(person_fact_documents([row], epoch, per_fact)) == per_fact for epoch in range(epochs))


def test_the_learning_rate_warms_up_holds_until_the_decay_starts_and_ends_at_its_floor():
    from unlearn_studio.core.demo.train import learning_rate_factor

    schedule = TrainSchedule(warmup_steps=10, decay_from=0.5)
    factors = [learning_rate_factor(step, schedule, total_steps=100) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(f == pytest.approx(1.0) for f in factors[10:51])  # held until half the steps
    assert factors[75] == pytest.approx(0.02 + 0.98 * 0.5) and factors[99] < 0.03
    cosine = TrainSchedule(warmup_steps=10)  # decay_from 0: the decay starts after the warm-up
    assert learning_rate_factor(55, cosine, total_steps=100) == pytest.approx(0.02 + 0.98 * 0.5)
