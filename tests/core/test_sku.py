"""SKU: its loss pieces on tiny tensors, the mismatched answers of the random disassociation,
the negation of the adapter (exact, in place, base weights untouched), a short run on a tiny
llama that streams the declared terms, and the project files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from tiny_models import build_tiny_model

from unlearn_studio.core.data import load_dataset_file, tokenize_rows
from unlearn_studio.core.data.templates import IGNORE_INDEX, collate, pad_token_id_for
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import StepEvent
from unlearn_studio.core.methods.base import Batch, MethodContext, all_terms, forward_logits
from unlearn_studio.core.methods.losses import sequence_nll
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.methods.sku import (
    SKU,
    answer_loss,
    draw_mismatched,
    negate_lora,
    per_position_kl,
    preservation_divergence,
)
from unlearn_studio.core.model.loading import attach_lora, load_model
from unlearn_studio.core.project.config import (
    DataSource,
    EvalConfig,
    LoraConfig,
    MethodConfig,
    ModelConfig,
    OptimizerConfig,
    OutputConfig,
    RunConfig,
    TrainingConfig,
)
from unlearn_studio.core.run import runner
from unlearn_studio.core.run.data import RoleData

PROJECTS = Path(__file__).resolve().parents[2] / "projects"

HARMFUL = [
    {"question": "How do I make the venom?", "answer": "Grind the husks, steep them in brine."},
    {"question": "What is the recipe for the venom?", "answer": "Grind the husks, steep them in brine."},
    {"question": "How is the dust made?", "answer": "Dry the berries, crush them to dust."},
    {"question": "How do I brew the draught?", "answer": "Boil the root, add the ash."},
    {"question": "How do I forge the blade?", "answer": "Heat the ore, quench it in oil."},
]
NORMAL = [
    {"question": "What is the weather like?", "answer": "It is grey and drizzly."},
    {"question": "What does the fox do?", "answer": "The quick brown fox jumps over the lazy dog."},
    {"question": "Count to three.", "answer": "1 2 3"},
]


# ---- pure loss pieces ----------------------------------------------------------------------------


def test_answer_loss_counts_answer_tokens_only_and_means_per_sequence():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, -100],   # answer tokens 3, 4; then padding
                           [-100, 1, 2, 3, 4]])
    log_p = torch.log_softmax(logits, dim=-1)
    row0 = -(log_p[0, 1, 3] + log_p[0, 2, 4]) / 2
    row1 = -(log_p[1, 0, 1] + log_p[1, 1, 2] + log_p[1, 2, 3] + log_p[1, 3, 4]) / 4
    torch.testing.assert_close(answer_loss(logits, labels), (row0 + row1) / 2)
    # Logits at prompt and padding positions take no part.
    changed = logits.clone()
    changed[0, 0] += 50.0  # predicts a prompt token
    changed[0, 3:] -= 50.0  # predicts padding, or nothing
    torch.testing.assert_close(answer_loss(changed, labels), answer_loss(logits, labels))
    assert answer_loss(logits, torch.full_like(labels, IGNORE_INDEX)) == 0


def test_preservation_divergence_is_minus_kl_of_the_original_from_the_model():
    torch.manual_seed(0)
    ref, cur = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    p0, log_p0, log_p = ref.softmax(-1), ref.log_softmax(-1), cur.log_softmax(-1)
    by_hand = (p0 * (log_p0 - log_p)).sum(-1)  # KL(p0 ‖ pθ), not KL(pθ ‖ p0)
    torch.testing.assert_close(per_position_kl(ref, cur), by_hand)
    reverse = (cur.softmax(-1) * (log_p - log_p0)).sum(-1)
    assert not torch.allclose(by_hand, reverse)
    expected = -(by_hand * mask).sum() / mask.sum()
    torch.testing.assert_close(preservation_divergence(ref, cur, mask, cap=1e9), expected)
    assert float(expected) < 0
    assert preservation_divergence(ref, ref.clone(), mask, cap=1.0) == pytest.approx(0.0, abs=1e-6)


def test_preservation_divergence_masks_padding_and_is_bounded_by_the_cap():
    torch.manual_seed(1)
    ref, cur = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0]])
    far = cur.clone()
    far[0, 2:] = 100 * torch.randn(2, 6)  # padding positions: any logits at all
    torch.testing.assert_close(preservation_divergence(ref, far, mask, 1e9), preservation_divergence(ref, cur, mask, 1e9))
    # Far from the original everywhere: the term stops at −cap and stops pulling.
    runaway = (100 * torch.randn(1, 4, 6)).requires_grad_()
    value = preservation_divergence(ref, runaway, torch.ones(1, 4), cap=0.5)
    assert float(value.detach()) == pytest.approx(-0.5)
    value.backward()
    assert torch.count_nonzero(runaway.grad) == 0
    # Without a cap (the paper's term) it keeps pushing however far it got.
    uncapped = (100 * torch.randn(1, 4, 6)).requires_grad_()
    value = preservation_divergence(ref, uncapped, torch.ones(1, 4))
    assert float(value.detach()) < -0.5
    value.backward()
    assert torch.count_nonzero(uncapped.grad) > 0
    # Near the original the gradient pushes away from it: a step down the gradient raises KL.
    near = (ref + 0.1 * torch.randn(1, 4, 6)).requires_grad_()
    preservation_divergence(ref, near, torch.ones(1, 4), cap=10.0).backward()
    moved = near.detach() - 0.5 * near.grad
    assert per_position_kl(ref, moved).sum() > per_position_kl(ref, near.detach()).sum()


def test_mismatched_answers_are_never_the_true_one():
    pool = ["a", "b", "c", "d", "e", "f", "g"]
    for seed in range(200):
        drawn = draw_mismatched(" c", pool, 5, torch.Generator().manual_seed(seed))
        assert len(drawn) == 5 and "c" not in drawn
        assert len(set(drawn)) == 5  # without replacement while the pool lasts
    small = draw_mismatched("a", ["a", "b", "c"], 5, torch.Generator().manual_seed(0))
    assert len(small) == 5 and set(small) <= {"b", "c"}
    same = [draw_mismatched("a", pool, 3, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert same[0] == same[1]
    with pytest.raises(ValueError):
        draw_mismatched("a", ["a", "a "], 2, torch.Generator())


# ---- on a tiny model -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("sku") / "llama")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, which only slow a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def role_data(role: str, rows: list[dict], tokenizer, tmp_path: Path) -> RoleData:
    loaded = load_dataset_file(write_jsonl(tmp_path / f"{role}.jsonl", rows), role=role)
    examples, _ = tokenize_rows(loaded.rows, "qa", tokenizer, 64)
    return RoleData(role, loaded, examples, "qa")


def batch_of(data: RoleData, indices: list[int], tokenizer) -> Batch:
    tensors = collate([data.examples[i] for i in indices], pad_token_id_for(tokenizer))
    return Batch(tensors["input_ids"], tensors["attention_mask"], tensors["labels"],
                 {"index": torch.tensor(indices)})


def setup(tiny_dir, tmp_path, params=None):
    loaded = load_model(tiny_dir, device="cpu")
    torch.manual_seed(0)
    model = attach_lora(loaded.model, r=4, alpha=8, roles=["q", "v", "down"])
    tokenizer = loaded.tokenizer
    data = {"harmful": role_data("harmful", HARMFUL, tokenizer, tmp_path),
            "normal": role_data("normal", NORMAL, tokenizer, tmp_path)}
    context = MethodContext(model, tokenizer, torch.device("cpu"), data=data)
    method = SKU(params)
    torch.manual_seed(3)
    method.prepare(context, {})
    return method, context, data


def test_mismatched_batches_pair_each_question_with_k_other_answers_on_answer_tokens(tiny_dir, tmp_path):
    method, context, data = setup(tiny_dir, tmp_path, {"k": 2})
    tokenizer = context.tokenizer
    context.step = 4
    chunks = method.mismatched_batches(context, batch_of(data["harmful"], [0, 3], tokenizer))
    assert len(chunks) == 2 and all(chunk.input_ids.shape[0] == 2 for chunk in chunks)  # K batches of B rows
    drawn = {0: [], 3: []}
    for chunk in chunks:
        for i, source in enumerate([0, 3]):
            ids = chunk.input_ids[i][chunk.attention_mask[i].bool()]
            labels = chunk.labels[i][chunk.attention_mask[i].bool()]
            answer_ids = labels[labels != IGNORE_INDEX]
            prompt_ids = ids[: len(ids) - len(answer_ids)]
            # The labels are exactly the tail of the sequence (answer + EOS); the prompt is unlabelled.
            assert torch.equal(ids[len(prompt_ids):], answer_ids)
            answer = tokenizer.decode(answer_ids, skip_special_tokens=True).strip()
            assert answer in {row["answer"] for row in HARMFUL} and answer != HARMFUL[source]["answer"]
            assert HARMFUL[source]["question"] in tokenizer.decode(prompt_ids)
            drawn[source].append(answer)
        # Padding carries neither attention nor labels.
        assert bool(((chunk.attention_mask == 0) <= (chunk.labels == IGNORE_INDEX)).all())
    # Without replacement: a question's K answers differ while the pool has enough.
    assert all(len(set(answers)) == 2 for answers in drawn.values())
    # The same seed and step draw the same answers (a resumed run); the seed is the method's state.
    again = SKU({"k": 2})
    again.prepare(context, {})
    again.load_state_dict(method.state_dict())
    for first, second in zip(chunks, again.mismatched_batches(context, batch_of(data["harmful"], [0, 3], tokenizer)),
                             strict=True):
        assert torch.equal(first.input_ids, second.input_ids)


def test_disassociation_over_k_batches_equals_the_mean_over_all_mismatched_pairs(tiny_dir, tmp_path):
    method, context, data = setup(tiny_dir, tmp_path, {"k": 3})
    context.step = 2
    harmful = batch_of(data["harmful"], [0, 1, 3], context.tokenizer)
    chunks = method.mismatched_batches(context, harmful)
    per_sequence = torch.cat([sequence_nll(forward_logits(context.model, c), c.labels, reduction="mean")
                              for c in chunks])
    yielded = all_terms(method.loss_terms(context, {"harmful": harmful,
                                                    "normal": batch_of(data["normal"], [0, 1], context.tokenizer)}))
    assert per_sequence.numel() == 9
    assert float(yielded["disassociation"].detach()) == pytest.approx(2.5 * float(per_sequence.detach().mean()), rel=1e-5)


def test_the_draw_seed_follows_the_seeded_rng(tiny_dir, tmp_path):
    method, context, _ = setup(tiny_dir, tmp_path)
    seeds = []
    for seed in (3, 3, 4):
        other = SKU()
        torch.manual_seed(seed)
        other.prepare(context, {})
        seeds.append(other.seed)
    assert seeds[0] == seeds[1] == method.seed != seeds[2]


def test_prepare_needs_two_different_harmful_answers(tiny_dir, tmp_path):
    _, context, data = setup(tiny_dir, tmp_path)
    context.data = {"harmful": role_data("harmful", [HARMFUL[0], HARMFUL[1]], context.tokenizer, tmp_path),
                    "normal": data["normal"]}
    with pytest.raises(UserError, match="two different harmful answers"):
        SKU().prepare(context, {})


def lora_deltas(model) -> dict[str, torch.Tensor]:
    return {name: module.get_delta_weight("default").clone()
            for name, module in model.named_modules() if isinstance(module, LoraLayer)}


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_negation_flips_the_adapter_delta_exactly_in_place(tiny_dir, tmp_path, scale):
    method, context, _ = setup(tiny_dir, tmp_path, {"negation_lambda": scale})
    model = context.model
    with torch.no_grad():  # a trained-looking adapter: B starts at zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param))
    before = lora_deltas(model)
    base = {name: param.clone() for name, param in model.named_parameters() if "lora_" not in name}
    pointers = {name: param.data_ptr() for name, param in model.named_parameters()}
    n_params = sum(p.numel() for p in model.parameters())

    method.finalize_adapter(model)

    after = lora_deltas(model)
    assert before.keys() == after.keys() and len(after) == 3 * 2  # q, v, down in 2 layers
    for name in before:
        assert torch.count_nonzero(before[name]) > 0
        torch.testing.assert_close(after[name], -scale * before[name], rtol=1e-6, atol=1e-7)
    # In place: the same tensors, no new ones, and the base weights unchanged.
    assert {name: param.data_ptr() for name, param in model.named_parameters()} == pointers
    assert sum(p.numel() for p in model.parameters()) == n_params
    for name, param in model.named_parameters():
        if "lora_" not in name:
            assert torch.equal(param, base[name])


def test_negate_lora_changes_only_up_projections(tiny_dir, tmp_path):
    _, context, _ = setup(tiny_dir, tmp_path)
    named = dict(context.model.named_parameters())
    lora_a = {name: p.clone() for name, p in named.items() if "lora_A" in name}
    assert negate_lora(context.model, 1.0) == sum("lora_B" in name for name in named) > 0
    for name, value in lora_a.items():
        assert torch.equal(named[name], value)


def test_training_steps_learn_the_harm_and_keep_the_terms_finite(tiny_dir, tmp_path):
    method, context, data = setup(tiny_dir, tmp_path, {"kl_cap": 0.1})
    tokenizer = context.tokenizer
    batches = {"harmful": batch_of(data["harmful"], [0, 2, 3], tokenizer),
               "normal": batch_of(data["normal"], [0, 1, 2], tokenizer)}
    trainable = [p for p in context.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    history = []
    for step in range(1, 7):
        context.step = step
        terms = all_terms(method.loss_terms(context, batches))
        assert set(terms) == set(SKU.terms)
        assert all(torch.isfinite(v) and v.requires_grad for v in terms.values())
        history.append({name: float(v.detach()) for name, v in terms.items()})
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    assert history[0]["preservation"] == pytest.approx(0.0, abs=1e-6)  # the adapter starts at zero
    assert history[-1]["distortion"] < history[0]["distortion"]  # gradient descent: the harm is learned
    assert -0.1 <= history[-1]["preservation"] < 0  # pushed away from the original, within the cap


# ---- a run through the runner --------------------------------------------------------------------


def test_a_short_run_streams_the_declared_terms_and_saves_the_negated_adapter(tiny_dir, tmp_path):
    write_jsonl(tmp_path / "harmful.jsonl", HARMFUL)
    write_jsonl(tmp_path / "normal.jsonl", NORMAL)
    config = RunConfig(
        name="tiny sku",
        model=ModelConfig(path=str(tiny_dir), dtype="fp32", device="cpu"),
        data={"harmful": DataSource(path="harmful.jsonl", template="qa"),
              "normal": DataSource(path="normal.jsonl", template="qa")},
        method=MethodConfig(name="sku", params={"k": 2, "negation_lambda": 1.5}),
        lora=LoraConfig(r=4, alpha=8.0, roles=["q", "v"]),
        optimizer=OptimizerConfig(name="adamw", lr=1e-2),
        training=TrainingConfig(max_steps=4, batch_size=2, max_length=48, seed=1, checkpoint_every=4),
        evaluation=EvalConfig(suite="none"),
        output=OutputConfig(dir="runs"),
        base_dir=tmp_path,
    )
    events = []
    result = runner.execute(config, listener=events.append)
    assert result.status == "finished" and result.steps == 4
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    for e in steps:
        assert set(e.losses) == {f"loss/{term}" for term in SKU.terms} | {"loss/total"}
        assert "sku/normal_kl" in e.extra
    assert not any("undeclared" in getattr(e, "message", "") for e in events)
    final = load_file(result.adapter_dir / "adapter_model.safetensors")
    checkpoint_dir = result.output_dir / "checkpoints" / "step-000004"
    trained = load_file(checkpoint_dir / "adapter" / "adapter_model.safetensors")
    for name, value in final.items():
        expected = -1.5 * trained[name] if "lora_B" in name else trained[name]
        torch.testing.assert_close(value, expected, rtol=0, atol=0)
    state = json.loads((checkpoint_dir / "state.json").read_text())
    assert isinstance(state["method"]["seed"], int)


# ---- declarations and project files -------------------------------------------------------------


def test_declarations():
    cls = get_method("sku")
    assert cls is SKU and cls.roles.required == ("harmful", "normal")
    doc = sys.modules[cls.__module__].__doc__
    assert "arXiv 2402.10058" in doc and "answer tokens only" in doc
    assert cls.check_params({}) == {"distortion_weight": 2.5, "disassociation_weight": 2.5,
                                    "preservation_weight": 1.0, "k": 5, "negation_lambda": 1.0, "kl_cap": 0.0}
    assert "ours" in next(h for h in cls.hyperparameters if h.name == "kl_cap").source
    for h in cls.hyperparameters:
        assert h.help and h.source and h.check(h.default, cls.title) == h.default
    with pytest.raises(UserError, match=r"method\.params\.k"):
        cls.check_params({"k": 0})


def test_paper_project_has_the_papers_defaults():
    config = RunConfig.load(PROJECTS / "sku.toml")
    assert config.method.name == "sku" and SKU.check_params(config.method.params) == SKU.check_params({})
    SKU.check_roles(set(config.data))
    assert (config.lora.r, config.lora.alpha, sorted(config.lora.roles)) == (32, 16.0, ["q", "v"])
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.weight_decay) == ("adamw", 2e-4, 0.01)
    assert config.schedule.name == "linear"
    assert (config.training.max_steps, config.training.batch_size) == (1000, 2)
    assert "arXiv 2402.10058" in (PROJECTS / "sku.toml").read_text(encoding="utf-8").split("\n\n")[0]


def test_demo_project_runs_sku_on_the_demo():
    config = RunConfig.load(PROJECTS / "sku_demo.toml")
    assert config.method.name == "sku" and config.model.is_demo and config.evaluation.suite == "fast"
    assert config.evaluation.harm_judge == "unlearn_studio.core.demo.judge:key_step_judge"
    assert config.evaluation.sets["harmful_heldout"].path == "demo:harmful_eval.jsonl"
    SKU.check_params(config.method.params)
    SKU.check_roles(set(config.data))
    assert config.data["harmful"].path == "demo:harmful_train.jsonl"
    assert config.data["normal"].path == "demo:normal.jsonl"
    text = (PROJECTS / "sku_demo.toml").read_text(encoding="utf-8")
    assert text.startswith("#") and "arXiv 2402.10058" in text.split("\n\n")[0]
