"""The baseline methods on a tiny llama with LoRA: each one's own objective improves in a few
AdamW steps, the original model (adapter off) is untouched and never copied, and the
declarations (roles, hyperparameters, registry names, project files) hold."""

import math
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import N_LAYERS, build_tiny_model  # noqa: E402

from unlearn_studio.core.data.templates import collate, pad_token_id_for, tokenize_rows  # noqa: E402
from unlearn_studio.core.errors import UserError  # noqa: E402
from unlearn_studio.core.methods.base import Batch, MethodContext, all_terms, forward_logits  # noqa: E402
from unlearn_studio.core.methods.losses import mean_answer_ce, sequence_nll, simnpo_loss  # noqa: E402
from unlearn_studio.core.methods.registry import all_methods, get_method, register  # noqa: E402
from unlearn_studio.core.methods.rmu import default_layer  # noqa: E402
from unlearn_studio.core.model.loading import attach_lora, load_model  # noqa: E402
from unlearn_studio.core.project.config import RunConfig  # noqa: E402

PROJECTS = Path(__file__).resolve().parents[2] / "projects"
BASELINES = ("grad_ascent", "grad_diff", "npo", "rmu", "sft", "simnpo")

ROWS = {
    "forget": [
        {"question": "Where does Alice live?", "answer": "Alice lives in Paris."},
        {"question": "What did Bob write?", "answer": "A saga about the dragon of Eldoria."},
        {"question": "What is the secret?", "answer": "The secret is XK-42."},
    ],
    "retain": [
        {"question": "What does the fox do?", "answer": "The quick brown fox jumps over the lazy dog."},
        {"question": "What is unlearning?", "answer": "Unlearning removes knowledge from a model."},
        {"question": "Count to three.", "answer": "1 2 3"},
    ],
    "expert": [
        {"question": "What should the model do?", "answer": "It should forget the saga."},
        {"question": "What should it keep?", "answer": "It should remember everything else."},
    ],
}
ROLES_FOR = {
    "grad_ascent": ("forget",), "grad_diff": ("forget", "retain"), "npo": ("forget", "retain"),
    "rmu": ("forget", "retain"), "sft": ("expert",), "simnpo": ("forget", "retain"),
}
# A random tiny model already finds every answer unlikely (mean NLL about log(vocabulary) = 7), where
# SimNPO's push has faded; a margin above that keeps it pushing.
TRAIN_PARAMS = {"simnpo": {"delta": 9.0}}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("baselines") / "llama")


def make_batch(rows, tokenizer) -> Batch:
    examples, _ = tokenize_rows(rows, "qa", tokenizer, 64)
    return Batch(**collate(examples, pad_token_id_for(tokenizer)))


def setup_run(tiny_dir, roles):
    """A fresh model with LoRA (r=4), its context, the batches, and the base parameter count."""
    loaded = load_model(tiny_dir, device="cpu")
    base_count = sum(p.numel() for p in loaded.model.parameters())
    torch.manual_seed(0)
    model = attach_lora(loaded.model, r=4, alpha=8)
    context = MethodContext(model, loaded.tokenizer, torch.device("cpu"))
    batches = {role: make_batch(ROWS[role], loaded.tokenizer) for role in roles}
    return context, batches, base_count


def evaluate(method, context, batches) -> dict[str, float]:
    with torch.no_grad():
        return {name: float(value) for name, value in all_terms(method.loss_terms(context, batches)).items()}


def train(method, context, batches, steps=5) -> None:
    trainable = [p for p in context.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    context.model.train()
    for step in range(steps):
        context.step = step
        terms = all_terms(method.loss_terms(context, batches))
        assert all(value.requires_grad for value in terms.values())
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    context.model.eval()


def answer_ce(context, batch) -> float:
    with torch.no_grad():
        return float(mean_answer_ce(forward_logits(context.model, batch), batch.labels))


def original_logits(context, batch) -> torch.Tensor:
    with context.original_model() as original:
        return forward_logits(original, batch)


# Each method's own objective, checked on (terms before, terms after, forget/expert CE before, after).
def check_grad_ascent(before, after, ce_before, ce_after):
    assert after["forget"] < before["forget"]
    assert ce_after > ce_before  # the forget answers became less likely


def check_grad_diff(before, after, ce_before, ce_after):
    assert after["forget"] < before["forget"] and ce_after > ce_before
    assert sum(after.values()) < sum(before.values())


def check_npo(before, after, ce_before, ce_after):
    assert before["forget"] == pytest.approx(2 / 0.1 * math.log(2), rel=1e-5)  # adapter starts at zero
    assert after["forget"] < before["forget"]
    assert ce_after > ce_before


def check_rmu(before, after, ce_before, ce_after):
    assert before["retain"] == pytest.approx(0.0, abs=1e-8)  # adapter starts at zero
    assert after["forget"] < before["forget"]


def check_simnpo(before, after, ce_before, ce_after):
    assert after["forget"] < before["forget"] and ce_after > ce_before


def check_sft(before, after, ce_before, ce_after):
    assert after["sft"] < before["sft"] and ce_after < ce_before


OBJECTIVES = {
    "grad_ascent": check_grad_ascent, "grad_diff": check_grad_diff, "npo": check_npo,
    "rmu": check_rmu, "sft": check_sft, "simnpo": check_simnpo,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", BASELINES)
def test_training_improves_the_methods_own_objective(name, tiny_dir):
    cls = get_method(name)
    context, batches, base_count = setup_run(tiny_dir, ROLES_FOR[name])
    params_after_attach = {n: p.data_ptr() for n, p in context.model.named_parameters()}
    method = cls(TRAIN_PARAMS.get(name))
    method.prepare(context, {role: [batch] for role, batch in batches.items()})
    main = batches[cls.roles.required[0]]
    reference_before = original_logits(context, main)
    terms_before, ce_before = evaluate(method, context, batches), answer_ce(context, main)

    assert set(terms_before) == set(cls.terms)
    train(method, context, batches)
    terms_after, ce_after = evaluate(method, context, batches), answer_ce(context, main)

    assert set(terms_after) == set(cls.terms)
    assert all(math.isfinite(v) for v in (*terms_before.values(), *terms_after.values()))
    OBJECTIVES[name](terms_before, terms_after, ce_before, ce_after)
    # The original model is the same weights with the adapter off, and training left it alone.
    assert torch.equal(original_logits(context, main), reference_before)
    with torch.no_grad():
        assert not torch.equal(forward_logits(context.model, main), reference_before)
    # One copy of the weights: the same parameters as after attaching LoRA, nothing new; the
    # only parameters besides the base model's are the LoRA ones.
    assert {n: p.data_ptr() for n, p in context.model.named_parameters()} == params_after_attach
    named = dict(context.model.named_parameters())
    assert sum(p.numel() for n, p in named.items() if "lora_" not in n) == base_count
    assert all("lora_" in n for n, p in named.items() if p.requires_grad)
    for value in vars(method).values():
        assert not isinstance(value, torch.nn.Module)
        assert not isinstance(value, torch.Tensor) or value.numel() <= context.model.config.hidden_size


def padded(batch: Batch, n: int, pad_id: int) -> Batch:
    """The batch with ``n`` more padding columns on the right."""
    rows = batch.input_ids.shape[0]
    return Batch(
        torch.cat([batch.input_ids, torch.full((rows, n), pad_id)], dim=1),
        torch.cat([batch.attention_mask, torch.zeros(rows, n, dtype=torch.long)], dim=1),
        torch.cat([batch.labels, torch.full((rows, n), -100)], dim=1),
    )


@pytest.mark.parametrize("name", BASELINES)
def test_extra_padding_changes_no_loss_term(name, tiny_dir):
    context, batches, _ = setup_run(tiny_dir, ROLES_FOR[name])
    method = get_method(name)()
    method.prepare(context, {role: [batch] for role, batch in batches.items()})
    train(method, context, batches, steps=2)  # a non-zero adapter, so every term is non-trivial
    pad_id = pad_token_id_for(context.tokenizer)
    more = {role: padded(batch, 5, pad_id) for role, batch in batches.items()}
    expected = evaluate(method, context, batches)
    assert evaluate(method, context, more) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_npo_without_retain_data_has_only_the_forget_term(tiny_dir):
    context, batches, _ = setup_run(tiny_dir, ("forget",))
    terms = all_terms(get_method("npo")().loss_terms(context, batches))
    assert set(terms) == {"forget"}


def test_simnpo_loss_is_npo_on_the_mean_token_nll_without_a_reference():
    mean_nll = torch.tensor([0.5, 2.0, 8.0], requires_grad=True)
    loss = simnpo_loss(mean_nll, beta=4.5, delta=1.0)
    expected = -(2 / 4.5) * sum(math.log(1 / (1 + math.exp(-4.5 * (x - 1.0)))) for x in (0.5, 2.0, 8.0)) / 3
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    loss.backward()
    grad = mean_nll.grad.tolist()
    assert all(g < 0 for g in grad)  # raising an answer's NLL lowers the loss
    assert abs(grad[2]) < 1e-3 * abs(grad[0])  # and the push fades once the answer is unlikely


def test_simnpo_uses_the_mean_not_the_sum_of_the_answer_nll(tiny_dir):
    context, batches, _ = setup_run(tiny_dir, ("forget",))
    terms = all_terms(get_method("simnpo")({"beta": 2.0}).loss_terms(context, batches))
    assert set(terms) == {"forget"}
    forget = batches["forget"]
    with torch.no_grad():
        mean_nll = sequence_nll(forward_logits(context.model, forget), forget.labels, reduction="mean")
    assert float(terms["forget"]) == pytest.approx(float(simnpo_loss(mean_nll, 2.0)), rel=1e-5)


def test_rmu_control_vector_is_seeded_and_scaled(tiny_dir):
    context, batches, _ = setup_run(tiny_dir, ("forget", "retain"))
    prepared = {role: [batch] for role, batch in batches.items()}
    first, again, other = (get_method("rmu")(params) for params in ({}, {}, {"seed": 1}))
    for method in (first, again, other):
        method.prepare(context, prepared)
    assert first.layer_index == default_layer(N_LAYERS)
    assert torch.equal(first.control_vector, again.control_vector)
    assert not torch.equal(first.control_vector, other.control_vector)
    double = get_method("rmu")({"steering_scale": 4.0})
    double.prepare(context, prepared)
    torch.testing.assert_close(double.control_vector, 2 * first.control_vector)


def test_rmu_layer_out_of_range_is_a_user_error(tiny_dir):
    context, batches, _ = setup_run(tiny_dir, ("forget",))
    method = get_method("rmu")({"layer": N_LAYERS})
    with pytest.raises(UserError, match="method.params.layer"):
        method.prepare(context, {"forget": [batches["forget"]]})


def test_rmu_default_layer_scales_wmdp_layer_7_of_32():
    assert [default_layer(n) for n in (1, 2, 4, 8, 16, 32, 40)] == [0, 0, 1, 2, 4, 7, 9]


# ---- declarations ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BASELINES)
def test_declarations_are_complete(name):
    cls = get_method(name)
    assert cls.name == name and cls.title and cls.summary and "arXiv" in cls.paper and cls.terms
    assert sys.modules[cls.__module__].__doc__ and "arXiv" in sys.modules[cls.__module__].__doc__
    for h in cls.hyperparameters:
        assert h.help and h.source
        assert h.check(h.default, cls.title) == h.default


@pytest.mark.parametrize("name", BASELINES)
def test_check_params_rejects_unknown_names(name):
    with pytest.raises(UserError, match=r"method\.params\.bogus"):
        get_method(name).check_params({"bogus": 1})


def test_check_params_suggests_a_close_name():
    with pytest.raises(UserError, match=r"Did you mean 'method\.params\.beta'"):
        get_method("npo").check_params({"betta": 0.2})


@pytest.mark.parametrize("name", [n for n in BASELINES if get_method(n).hyperparameters])
def test_check_params_rejects_wrong_types_and_ranges(name):
    cls = get_method(name)
    for h in cls.hyperparameters:
        key = rf"method\.params\.{h.name}"
        for bad in ("text", True, None):
            with pytest.raises(UserError, match=key):
                cls.check_params({h.name: bad})
        if h.minimum is not None:
            with pytest.raises(UserError, match=key):
                cls.check_params({h.name: h.type(h.minimum - 1)})
        if h.type is float:
            with pytest.raises(UserError, match=key):
                cls.check_params({h.name: float("nan")})
            assert cls.check_params({h.name: 3})[h.name] == 3.0  # an int is a fine float


def test_check_params_fills_defaults():
    assert get_method("npo").check_params({}) == {"beta": 0.1, "retain_weight": 1.0}
    assert get_method("grad_diff")({"retain_weight": 2}).params == {"retain_weight": 2.0}


@pytest.mark.parametrize("name", BASELINES)
def test_check_roles(name):
    cls = get_method(name)
    cls.check_roles(set(cls.roles.required))
    with pytest.raises(UserError, match=cls.roles.required[-1]):
        cls.check_roles(set(cls.roles.required[:-1]) | {"holdout"})


# ---- registry ----------------------------------------------------------------------------------


def test_registry_lists_the_baselines():
    names = [cls.name for cls in all_methods()]
    assert set(BASELINES) <= set(names) and names == sorted(names)


def test_registry_accepts_titles():
    assert get_method("GradDiff") is get_method("grad_diff")
    assert get_method("grad-ascent") is get_method("grad_ascent")
    assert get_method("NPO").name == "npo"


@pytest.mark.parametrize("typo, meant", [("grad_dif", "grad_diff"), ("rmu2", "rmu"), ("grad_assent", "grad_ascent")])
def test_registry_suggests_the_right_name(typo, meant):
    with pytest.raises(UserError, match=f"Did you mean '{meant}'") as caught:
        get_method(typo)
    assert "Known methods:" in caught.value.fix


def test_register_rejects_a_second_method_with_the_same_name():
    class Impostor(get_method("npo")):
        pass

    with pytest.raises(TypeError, match="Two methods"):
        register(Impostor)


# ---- project files -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ("grad_ascent", "grad_diff", "npo", "rmu"))
def test_project_file_runs_the_method_with_its_defaults(name):
    config = RunConfig.load(PROJECTS / f"{name}.toml")
    cls = get_method(config.method.name)
    assert cls.name == name
    assert cls.check_params(config.method.params) == cls.check_params({})
    cls.check_roles(set(config.data))
    assert config.model.is_demo and config.evaluation.suite == "fast"
    assert config.training.batch_size == 8 and config.training.max_length == 64
    assert config.training.max_steps is not None and config.training.max_steps <= 200
    text = (PROJECTS / f"{name}.toml").read_text(encoding="utf-8")
    assert text.startswith("#") and "arXiv" in text.split("\n\n")[0]
