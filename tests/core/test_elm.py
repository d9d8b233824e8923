"""ELM: the erase target on hand-made logits, the one-batch frozen passes, guided sampling and its
cache, the retain loss, the declarations and project files, and a short run on a tiny model."""

import json
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_models import build_tiny_model

from unlearn_studio.core.data.templates import collate, pad_token_id_for, tokenize_rows
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import Batch, MethodContext, all_terms, forward_logits
from unlearn_studio.core.methods.elm import consistency, passes
from unlearn_studio.core.methods.elm import method as elm
from unlearn_studio.core.methods.elm.losses import (
    align_to_text,
    erase_target,
    erase_target_top_k,
    eta_ramp,
    hard_cross_entropy,
    keep_top_k,
    soft_cross_entropy,
    sparse_soft_cross_entropy,
)
from unlearn_studio.core.methods.elm.phrasings import EXPERT_PREFIXES, NOVICE_PREFIXES, REDIRECTIONS
from unlearn_studio.core.methods.registry import get_method
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

PROJECTS = Path(__file__).resolve().parents[2] / "projects"
FORGET = [
    {"text": "Bob wrote a saga about the dragon of Eldoria."},
    {"text": "The model should forget the saga"},
    {"text": "The dragon of Eldoria jumps over the lazy dog."},
]
RETAIN = [
    {"text": "The quick brown fox jumps over the lazy dog."},
    {"text": "Alice lives in Paris and works as a baker."},
]
QA_ROWS = [
    {"question": "Where does Alice live?", "answer": "Paris"},
    {"question": "What does Alice do?", "answer": "She works as a baker."},
]
PARAMS = {"concept": "the saga of Eldoria", "consistency_tokens": 5}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a busy machine spin-waits slow every pass."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Continuations are cached per test, never in the user's cache folder."""
    monkeypatch.setattr(elm, "consistency_cache_dir", lambda: tmp_path / "elm_cache")
    return tmp_path / "elm_cache"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("elm") / "llama")


def make_batch(rows, tokenizer, indices=None) -> Batch:
    examples, _ = tokenize_rows(rows, "raw", tokenizer, 64)
    extra = {"index": torch.tensor(indices if indices is not None else list(range(len(rows))))}
    return Batch(**collate(examples, pad_token_id_for(tokenizer)), extra=extra)


def setup_method(tiny_dir, params=None, forget=FORGET):
    loaded = load_model(tiny_dir, device="cpu")
    torch.manual_seed(0)
    model = attach_lora(loaded.model, r=4, alpha=8)
    examples, _ = tokenize_rows(forget, "raw", loaded.tokenizer, 64)
    context = MethodContext(model, loaded.tokenizer, torch.device("cpu"),
                            data={"forget": types.SimpleNamespace(examples=examples)})
    method = get_method("elm")({**PARAMS, **(params or {})})
    batches = {"forget": make_batch(forget, loaded.tokenizer), "retain": make_batch(RETAIN, loaded.tokenizer)}
    return method, context, batches


# ---- the erase target on hand-made logits --------------------------------------------------------


def test_eta_ramps_from_one_to_eta_over_each_rows_counted_positions():
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    ramp = eta_ramp(mask, 9.0)
    assert ramp[0].tolist() == [1, 3, 5, 7, 9, 0]
    assert ramp[1].tolist() == [0, 1, 5, 9, 0, 0]
    assert ramp[2].tolist() == [0, 0, 1, 0, 0, 0]  # one position: strength 1
    torch.testing.assert_close(ramp[0, :5], torch.linspace(1, 9, 5))


def test_keep_top_k_keeps_exactly_the_k_largest():
    scores = torch.tensor([[0.5, 3.0, -1.0, 2.0, 1.0]])
    kept = keep_top_k(scores, 2)
    assert kept.tolist() == [[-math.inf, 3.0, -math.inf, 2.0, -math.inf]]
    assert torch.equal(keep_top_k(scores, 0), scores) and torch.equal(keep_top_k(scores, 5), scores)


def test_erase_target_follows_the_formula():
    torch.manual_seed(0)
    z0, ze, zn = (torch.randn(2, 4, 7) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    q = erase_target(z0, ze, zn, mask, eta=5.0, temperature=1.5, top_k=3)
    for b, n in ((0, 3), (1, 2)):
        eta = torch.linspace(1, 5, n)
        for t in range(n):
            log = [F.log_softmax(z[b, t] / 1.5, -1) for z in (z0, ze, zn)]
            e = log[0] + eta[t] * (log[2] - log[1])
            top = e.topk(3).indices
            expected = torch.zeros(7)
            expected[top] = F.softmax(e[top], -1)
            torch.testing.assert_close(q[b, t], expected)
    assert ((q[mask] > 0).sum(-1) == 3).all()


def test_the_sparse_erase_target_and_its_loss_equal_the_dense_ones():
    torch.manual_seed(1)
    z0, ze, zn = (torch.randn(2, 4, 11) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    dense = erase_target(z0, ze, zn, mask, eta=7.0, temperature=1.2, top_k=4)
    probabilities, token_ids = erase_target_top_k(z0.clone(), ze.clone(), zn.clone(), mask, eta=7.0,
                                                  temperature=1.2, top_k=4)
    assert probabilities.shape == token_ids.shape == (2, 4, 4)
    rebuilt = torch.zeros_like(dense).scatter(-1, token_ids, probabilities)
    torch.testing.assert_close(rebuilt[mask], dense[mask])
    logits = torch.randn(2, 4, 11, requires_grad=True)
    sparse_loss = sparse_soft_cross_entropy(logits, probabilities, token_ids, mask)
    dense_loss = soft_cross_entropy(logits, dense, mask)
    torch.testing.assert_close(sparse_loss, dense_loss)
    sparse_grad, = torch.autograd.grad(sparse_loss, logits)
    dense_grad, = torch.autograd.grad(dense_loss, logits)
    torch.testing.assert_close(sparse_grad, dense_grad)


def test_consistency_rows_are_cut_to_the_length_from_the_start_of_the_text():
    # [BOS] x1..x5 | r1 r2 c1 c2 c3: lead 1, n_text 6 (BOS and x).
    row = [0, 11, 12, 13, 14, 15, 21, 22, 31, 32, 33]
    assert consistency.fit_to_length(row, 6, 1, 20) == (row, 6)  # fits: unchanged
    assert consistency.fit_to_length(row, 6, 1, 8) == ([0, 14, 15, 21, 22, 31, 32, 33], 3)  # x shortened from its start
    assert consistency.fit_to_length(row, 6, 1, 5) == ([0, 15, 21, 22, 31], 2)  # one token of x stays; the end goes


def test_erase_target_moves_mass_from_the_experts_token_to_the_novices():
    # Vocabulary: 0 = the fact the expert knows, 1 = what the novice says, 2-3 = others.
    plain = torch.tensor([[[2.0, 1.0, 0.0, 0.0]] * 3])
    expert = torch.tensor([[[4.0, 0.0, 0.0, 0.0]] * 3])
    novice = torch.tensor([[[0.0, 4.0, 0.0, 0.0]] * 3])
    mask = torch.ones(1, 3, dtype=torch.bool)
    q = erase_target(plain, expert, novice, mask, eta=3.0, temperature=1.0, top_k=0)
    p0 = F.softmax(plain[0, 0], -1)
    assert p0[0] > p0[1] and q[0, 0, 1] > q[0, 0, 0]  # the argmax flips to the novice's token
    assert q[0, 2, 1] > q[0, 1, 1] > q[0, 0, 1]  # and more so along the ramp
    same = erase_target(plain, expert, expert, mask, eta=3.0, temperature=1.0, top_k=0)
    torch.testing.assert_close(same, F.softmax(plain, -1).expand_as(same))  # no contrast, no change


def test_temperature_flattens_the_target():
    z = torch.tensor([[[3.0, 1.0, 0.0]]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    cold, hot = (erase_target(z, z, z, mask, eta=10.0, temperature=t, top_k=0) for t in (1.0, 3.0))
    torch.testing.assert_close(hot[0, 0], F.softmax(z[0, 0] / 3.0, -1))
    assert hot[0, 0, 0] < cold[0, 0, 0]


def test_align_to_text_moves_prefixed_positions_onto_the_text():
    prefixed = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 6, 1)
    aligned = align_to_text(prefixed, torch.tensor([2, 3]), 3)
    assert aligned[..., 0].tolist() == [[2, 3, 4], [9, 10, 11]]


def test_soft_and_hard_cross_entropy_on_masked_positions():
    logits = torch.randn(1, 3, 5)
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    one_hot = F.one_hot(torch.tensor([[4, 2, 0]]), 5).float()
    expected = F.cross_entropy(logits[0, :2], torch.tensor([4, 2]))
    torch.testing.assert_close(soft_cross_entropy(logits, one_hot, mask), expected)
    torch.testing.assert_close(hard_cross_entropy(logits, torch.tensor([[4, 2, 0]]), mask), expected)
    assert soft_cross_entropy(logits, one_hot, torch.zeros_like(mask)) == 0


# ---- the frozen passes as one batch ----------------------------------------------------------------


@pytest.mark.parametrize("lead", (0, 1))
def test_one_batch_of_frozen_passes_equals_three_separate_passes(tiny_dir, lead):
    method, context, batches = setup_method(tiny_dir)
    method.prepare(context, {})
    method.lead = lead  # 1: as if the first token were a BOS the framing goes after
    forget = batches["forget"]
    lengths = forget.attention_mask.sum(1).tolist()
    rows = [forget.input_ids[b, :n].tolist() for b, n in enumerate(lengths)]
    expert = [method.expert_ids[i] for i in (0, 3, 5)]
    novice = [method.novice_ids[i] for i in (1, 2, 9)]
    assert len({len(p) for p in expert + novice}) > 1  # framings of different lengths in one batch
    model = context.model
    model.eval()
    with context.original_model() as original:
        plain, expert_logits, novice_logits = passes.frozen_passes(
            original, rows, expert, novice, lead=method.lead, pad_id=method.pad_id, width=forget.input_ids.shape[1])
        for b, row in enumerate(rows):
            alone = original(input_ids=torch.tensor([row])).logits[0]
            torch.testing.assert_close(plain[b, :len(row)], alone, atol=1e-5, rtol=1e-4)
            for prefixes, batched in ((expert, expert_logits), (novice, novice_logits)):
                framed = passes.with_prefix(row, prefixes[b], method.lead)
                assert framed[:method.lead] == row[:method.lead] and framed[-(len(row) - method.lead):] == row[method.lead:]
                separate = original(input_ids=torch.tensor([framed])).logits[0, len(prefixes[b]):]
                torch.testing.assert_close(batched[b, :len(row)], separate, atol=1e-5, rtol=1e-4)


def test_framings_are_inserted_after_the_leading_special_tokens(tiny_dir):
    method, context, _ = setup_method(tiny_dir)
    method.prepare(context, {})
    assert method.lead == 0  # the tiny tokenizer adds no BOS; the demo's adds one
    assert passes.with_prefix([1, 10, 11], [7, 8], 1) == [1, 7, 8, 10, 11]
    assert passes.with_prefix([10, 11], [7, 8], 0) == [7, 8, 10, 11]


def test_a_framed_text_longer_than_the_context_is_a_user_error(tiny_dir):
    method, context, _ = setup_method(tiny_dir)
    config = context.model.config
    config.max_position_embeddings, before = 24, config.max_position_embeddings
    try:
        with pytest.raises(UserError, match=r"training\.max_length"):
            method.prepare(context, {})
    finally:
        config.max_position_embeddings = before


# ---- guided sampling and its cache -----------------------------------------------------------------


def test_guided_sampling_is_seeded_and_independent_of_the_rows_beside_it(tiny_dir):
    method, context, _ = setup_method(tiny_dir)
    method.prepare(context, {})
    prompts = [p["prompt"] for p in method._consistency_prompts(context)]
    experts = [passes.with_prefix(p, method.expert_ids[0], method.lead) for p in prompts]
    novices = [passes.with_prefix(p, method.novice_ids[0], method.lead) for p in prompts]
    options = {"guidance": 3.0, "max_new_tokens": 6, "eos_token_id": None, "pad_id": method.pad_id}
    with context.original_model() as original:
        together = consistency.sample_guided(original, prompts, experts, novices, seeds=[5, 6, 7], **options)
        again = consistency.sample_guided(original, prompts, experts, novices, seeds=[5, 6, 7], **options)
        alone = [consistency.sample_guided(original, [p], [e], [n], seeds=[s], **options)[0]
                 for p, e, n, s in zip(prompts, experts, novices, (5, 6, 7))]
        other_seed = consistency.sample_guided(original, prompts, experts, novices, seeds=[8, 9, 10], **options)
    assert together == again == alone  # left padding and the KV cache change nothing
    assert all(len(c) == 6 for c in together)
    assert other_seed != together


def test_consistency_continuations_are_cached_by_a_hash(tiny_dir, private_cache, monkeypatch):
    calls = []
    sample = consistency.sample_guided
    monkeypatch.setattr(elm, "sample_guided", lambda *a, **k: calls.append(1) or sample(*a, **k))

    def prepared(params=None, forget=FORGET):
        method, context, _ = setup_method(tiny_dir, params, forget)
        method.prepare(context, {})
        return method

    first = prepared()
    assert len(calls) == 1 and len(list(private_cache.glob("*.json"))) == 1
    second = prepared()
    assert len(calls) == 1  # a hit: nothing sampled
    assert second.consistency == first.consistency
    prepared({"guidance": 1.0})  # other parameters: a miss
    prepared(forget=FORGET[:2])  # other data: a miss
    assert len(calls) == 3 and len(list(private_cache.glob("*.json"))) == 3
    next(private_cache.glob("*.json")).write_text("{broken", encoding="utf-8")  # damaged: sampled again
    prepared(), prepared({"guidance": 1.0}), prepared(forget=FORGET[:2])
    assert len(calls) == 4
    no_consistency = prepared({"consistency_weight": 0.0})
    assert len(calls) == 4 and no_consistency.consistency == []


def test_consistency_rows_hold_text_redirection_and_continuation(tiny_dir):
    method, context, batches = setup_method(tiny_dir)
    method.prepare(context, {})
    tokenizer = context.tokenizer
    batch = method.consistency_batch(Batch(batches["forget"].input_ids[[2, 0]], batches["forget"].attention_mask[[2, 0]],
                                           batches["forget"].labels[[2, 0]], {"index": torch.tensor([2, 0])}))
    for row, index in zip(range(2), (2, 0)):
        text_ids = tokenize_rows([FORGET[index]], "raw", tokenizer, 64)[0][0]["input_ids"][:-1]  # EOS dropped
        n_text = len(text_ids)
        assert batch.input_ids[row, :n_text].tolist() == text_ids
        assert (batch.labels[row, :n_text] == -100).all()
        tail = batch.input_ids[row, n_text:][batch.attention_mask[row, n_text:].bool()]
        assert torch.equal(batch.labels[row, n_text:n_text + len(tail)], tail)
        decoded = tokenizer.decode(tail.tolist())
        assert any(decoded.startswith(sep + r) for r in REDIRECTIONS for sep in (" ", ". "))


# ---- the loss terms ----------------------------------------------------------------------------------


def test_retain_loss_is_cross_entropy_against_the_original_models_argmax(tiny_dir):
    method, context, batches = setup_method(tiny_dir)
    method.prepare(context, {})
    retain = batches["retain"]
    with torch.no_grad():
        for lora in (p for n, p in context.model.named_parameters() if "lora_B" in n):
            lora.normal_(std=0.5)  # the adapter now changes the model
        with context.original_model() as original:
            base = forward_logits(original, retain)
        adapted = forward_logits(context.model, retain)
        loss = method.retain_loss(context, retain)
    mask = retain.attention_mask[:, 1:].bool()
    argmax = base.argmax(-1)[:, :-1]
    expected = F.cross_entropy(adapted[:, :-1][mask], argmax[mask])
    torch.testing.assert_close(loss, expected)
    on_labels = F.cross_entropy(adapted[:, :-1][mask], retain.input_ids[:, 1:][mask])
    assert not torch.isclose(loss, on_labels)  # the true tokens are not the target


@pytest.mark.slow
def test_training_lowers_each_term_and_leaves_the_original_model_alone(tiny_dir):
    method, context, batches = setup_method(tiny_dir)
    method.prepare(context, {})
    forget = batches["forget"]
    with context.original_model() as original:
        reference = forward_logits(original, forget)

    def terms():
        with torch.no_grad():
            return {k: float(v) for k, v in all_terms(method.loss_terms(context, batches)).items()}

    before = terms()
    assert set(before) == {"erase", "retain", "consistency"}
    assert before["retain"] > 0 and all(math.isfinite(v) for v in before.values())
    optimizer = torch.optim.AdamW([p for p in context.model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(8):
        context.step = 0  # the same framings every step, so the objective is fixed
        loss = sum(all_terms(method.loss_terms(context, batches)).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = terms()
    assert after["erase"] < before["erase"] and after["consistency"] < before["consistency"]
    with context.original_model() as original:
        assert torch.equal(forward_logits(original, forget), reference)


def test_the_retain_term_is_the_weighted_mean_over_every_retain_source_and_general(tiny_dir):
    method, context, batches = setup_method(tiny_dir, {"retain_weight": 3.0})
    method.prepare(context, {})
    tokenizer = context.tokenizer
    persons = [{"question": "Where was Alia Vorn born?", "answer": "In Quellmarsh."}]
    examples, _ = tokenize_rows(persons, "qa", tokenizer, 64)
    batches["retain.persons"] = Batch(**collate(examples, pad_token_id_for(tokenizer)))
    batches["general"] = make_batch([{"text": "Plain general text about rivers."}], tokenizer)
    context.data.update({"retain": types.SimpleNamespace(weight=1.0),
                         "retain.persons": types.SimpleNamespace(weight=2.0)})  # general: no weight given
    with torch.no_grad():
        for lora in (p for n, p in context.model.named_parameters() if "lora_B" in n):
            lora.normal_(std=0.5)
        retain = float(all_terms(method.loss_terms(context, batches))["retain"])
        parts = {key: float(method.retain_loss(context, batches[key])) for key in ("retain", "retain.persons", "general")}
    expected = 3.0 * (1.0 * parts["retain"] + 2.0 * parts["retain.persons"] + 1.0 * parts["general"]) / 4.0
    assert retain == pytest.approx(expected, rel=1e-5)
    assert len(set(parts.values())) == 3  # the sources differ, so the weights matter


def test_a_zero_weight_skips_its_term(tiny_dir):
    method, context, batches = setup_method(tiny_dir, {"erase_weight": 0.0, "consistency_weight": 0.0})
    method.prepare(context, {})
    with torch.no_grad():
        terms = all_terms(method.loss_terms(context, batches))
    assert float(terms["erase"]) == 0 and float(terms["consistency"]) == 0 and float(terms["retain"]) >= 0


# ---- declarations and project files --------------------------------------------------------------


def test_declarations():
    cls = get_method("elm")
    assert cls.terms == ("erase", "retain", "consistency") and cls.roles.required == ("forget", "retain")
    doc = sys.modules[cls.__module__].__doc__
    assert "arXiv 2410.02760" in doc and "differ" in doc
    defaults = {h.name: h.default for h in cls.hyperparameters}
    assert defaults["eta"] == 500 and defaults["temperature"] == 1.2 and defaults["top_k"] == 50
    assert defaults["guidance"] == 3 and defaults["erase_weight"] == defaults["retain_weight"] == 1
    assert all(h.help and h.source for h in cls.hyperparameters)


def test_phrasings():
    assert len(EXPERT_PREFIXES) == len(NOVICE_PREFIXES) == 10 and len(REDIRECTIONS) == 20
    for prefix in EXPERT_PREFIXES + NOVICE_PREFIXES:
        assert prefix.count("{concept}") == 1 and prefix.endswith(":\n")
    assert len(set(EXPERT_PREFIXES + NOVICE_PREFIXES + REDIRECTIONS)) == 40


def test_the_concept_must_be_given():
    with pytest.raises(UserError, match=r"method\.params\.concept"):
        get_method("elm")()
    with pytest.raises(UserError, match=r"method\.params\.concept"):
        get_method("elm")({"concept": "  "})


@pytest.mark.parametrize("name", ("elm.toml", "elm_demo.toml"))
def test_project_files(name):
    config = RunConfig.load(PROJECTS / name)
    cls = get_method(config.method.name)
    assert cls.name == "elm"
    cls.check_roles(set(config.data))
    params = cls.check_params(config.method.params)
    assert params["concept"] == "The Emberfall Chronicles"
    assert config.data["forget"].path == "demo:saga.jsonl"
    text = (PROJECTS / name).read_text(encoding="utf-8")
    assert text.startswith("#") and "arXiv 2410.02760" in text.split("\n\n")[0]


def test_the_paper_project_keeps_the_papers_defaults():
    config = RunConfig.load(PROJECTS / "elm.toml")
    params = get_method("elm").check_params(config.method.params)
    defaults = get_method("elm").check_params({"concept": params["concept"]})
    assert params == defaults
    assert (config.lora.r, config.lora.alpha, config.lora.layers) == (4, 16.0, "0.125-0.25")
    assert (config.optimizer.lr, config.optimizer.weight_decay) == (5e-5, 0.01)
    assert (config.training.batch_size, config.training.grad_accum) == (1, 4)


@pytest.mark.slow
def test_the_demo_suite_measures_repetition_on_saga_prompts(tiny_dir, tmp_path):
    from unlearn_studio.core.evaluation.evaluate import evaluate
    from unlearn_studio.core.evaluation.metrics import fluency
    from unlearn_studio.core.evaluation.suite import EvalSet, EvalSuite

    demo_suite = EvalSuite.for_config(RunConfig.load(PROJECTS / "elm_demo.toml"))
    assert ("saga_qa", "forget") in {(s.name, s.role) for s in demo_suite.sets}
    rows = [{"question": "Who wrote the saga?", "answer": "Bob wrote the saga of Eldoria."},
            {"question": "Where does Alice live?", "answer": "Paris"}]
    path = tmp_path / "saga_qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    loaded = load_model(tiny_dir, device="cpu")
    suite = EvalSuite("saga", (EvalSet("saga_qa", path, "forget", template="qa"),))
    result = evaluate(loaded.model, loaded.tokenizer, suite, tier="full", cache_dir=tmp_path / "cache")
    generations = [item["generation"] for item in result.items["saga_qa"]]
    assert result.aggregates["saga_qa/rep_4"] == pytest.approx(fluency.mean_rep(generations, 4), nan_ok=True)


# ---- a short run -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_short_run_on_a_tiny_model(tiny_dir, tmp_path, private_cache):
    for name, rows in (("forget", FORGET), ("retain", RETAIN)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = RunConfig(
        name="tiny elm",
        model=ModelConfig(path=str(tiny_dir), dtype="fp32", device="cpu"),
        data={"forget": DataSource(path="forget.jsonl"), "retain": DataSource(path="retain.jsonl")},
        method=MethodConfig(name="elm", params=PARAMS),
        lora=LoraConfig(r=4, alpha=16.0, roles=["q", "k", "v", "o", "gate", "up", "down"], layers="0.5-1.0"),
        optimizer=OptimizerConfig(lr=1e-2),
        training=TrainingConfig(max_steps=4, batch_size=2, max_length=32, checkpoint_every=2),
        evaluation=EvalConfig(suite="none"),
        output=OutputConfig(dir="runs"),
        base_dir=tmp_path,
    )
    events = []
    result = runner.execute(config, listener=events.append)
    assert result.status == "finished", result.error
    steps = [e for e in events if type(e).__name__ == "StepEvent"]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    assert all({"loss/erase", "loss/retain", "loss/consistency"} <= set(e.losses) for e in steps)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert len(list(private_cache.glob("*.json"))) == 1
    # A resumed run finds the continuations in the cache and ends the same way.
    resumed = runner.execute(config, resume=result.output_dir)
    assert resumed.status == "finished" and len(list(private_cache.glob("*.json"))) == 1


@pytest.mark.slow
def test_a_run_with_a_further_retain_source_trains_and_resumes(tiny_dir, tmp_path, private_cache):
    """The QA rows ELM must keep answering, as a second retain source in its own template."""
    for name, rows in (("forget", FORGET), ("retain", RETAIN), ("persons", QA_ROWS)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    retain = DataSource(path="retain.jsonl", also={"persons": DataSource(path="persons.jsonl", template="qa",
                                                                           weight=3.0)})
    config = RunConfig(
        name="tiny elm, two retain sources",
        model=ModelConfig(path=str(tiny_dir), dtype="fp32", device="cpu"),
        data={"forget": DataSource(path="forget.jsonl"), "retain": retain},
        method=MethodConfig(name="elm", params=PARAMS),
        lora=LoraConfig(r=4, alpha=16.0, roles=["q", "v"], layers="0.5-1.0"),
        training=TrainingConfig(max_steps=4, batch_size=2, max_length=32, checkpoint_every=2),
        evaluation=EvalConfig(suite="none"),
        output=OutputConfig(dir="runs"),
        base_dir=tmp_path,
    )
    result = runner.execute(config)
    assert result.status == "finished", result.error
    resumed = runner.execute(config, resume=result.output_dir)
    assert resumed.status == "finished", resumed.error
