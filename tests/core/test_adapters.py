"""LoRA adapter arithmetic (core/adapters.py): the exact low-rank Ext-Sub equals the dense per-row
formula on random adapters of several shapes and ranks, the zero-row and opposite-row guards hold,
scalings (rank/alpha patterns, rsLoRA) are folded in, the result loads with plain
``PeftModel.from_pretrained``, and adapters that do not fit together are refused by name."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer, ParamWrapper
from tiny_models import build_tiny_model
from transformers import AutoModelForCausalLM

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model import adapters
from unlearn_studio.core.model.adapters import (
    OPERATIONS,
    LoraModule,
    combine_adapters,
    combine_modules,
    dense_reference,
    ext_sub_dense,
    ext_sub_factors,
    read_adapter,
)

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def random_module(out: int, inp: int, rank: int, seed: int, scale: float = 1.0) -> LoraModule:
    generator = torch.Generator().manual_seed(seed)
    return LoraModule("m", torch.randn(rank, inp, generator=generator),
                      scale * torch.randn(out, rank, generator=generator))


def dense64(module: LoraModule) -> torch.Tensor:
    return module.B.double() @ module.A.double()


def relative_error(B: torch.Tensor, A: torch.Tensor, reference: torch.Tensor) -> float:
    return float((B.double() @ A.double() - reference).norm() / reference.norm())


# ---- the arithmetic on random factors ----------------------------------------------------------


@pytest.mark.parametrize("out, inp, r_plus, r_minus", [
    (64, 64, 8, 8),     # square (attention q/o)
    (32, 64, 4, 8),     # grouped-query k/v: fewer outputs than inputs
    (172, 64, 16, 4),   # MLP up/gate
    (64, 172, 2, 16),   # MLP down
    (48, 48, 1, 1),     # rank one
])
def test_ext_sub_low_rank_equals_dense_formula(out, inp, r_plus, r_minus):
    plus, minus = random_module(out, inp, r_plus, 1, 0.5), random_module(out, inp, r_minus, 2, 2.0)
    for alpha in (1.0, 0.3):
        B, A = ext_sub_factors(plus, minus, alpha)
        assert B.dtype == A.dtype == torch.float32
        assert A.shape == (r_plus + r_minus, inp) and B.shape == (out, r_plus + r_minus)
        reference = ext_sub_dense(dense64(plus), dense64(minus), alpha)
        assert relative_error(B, A, reference) < 1e-5
        # It is not plain subtraction in disguise: the projection changes the result.
        subtraction = dense64(plus) - alpha * dense64(minus)
        assert float((reference - subtraction).norm() / subtraction.norm()) > 0.05


@pytest.mark.parametrize("op", OPERATIONS)
def test_every_operation_equals_its_dense_formula(op):
    plus, minus = random_module(40, 24, 3, 3), random_module(40, 24, 5, 4)
    B, A = combine_modules(op, plus, None if op == "negation" else minus, 0.7)
    assert A.shape[0] == (3 if op == "negation" else 8)
    assert relative_error(B, A, dense_reference(op, dense64(plus), dense64(minus), 0.7)) < 1e-6


def test_dense_formula_by_hand():
    # u+ = e1, u- = e2, c = (e1+e2)/√2, P = <e2, c>c = (½, ½): out = e1 − (e2 − P) = (1.5, −0.5).
    out = ext_sub_dense(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 1.0)
    assert torch.allclose(out, torch.tensor([[1.5, -0.5]]))
    # Parallel rows: the anti-expert row is all "general", so nothing is removed.
    out = ext_sub_dense(torch.tensor([[2.0, 0.0]]), torch.tensor([[3.0, 0.0]]), 1.0)
    assert torch.allclose(out, torch.tensor([[2.0, 0.0]]))


def test_zero_rows_fall_back_to_subtraction():
    plus, minus = random_module(16, 12, 3, 5), random_module(16, 12, 3, 6)
    plus.B[2] = 0.0   # an expert row that never moved
    minus.B[7] = 0.0  # an anti-expert row that never moved
    B, A = ext_sub_factors(plus, minus, 1.0)
    result = B.double() @ A.double()
    assert torch.isfinite(result).all()
    subtraction = dense64(plus) - dense64(minus)
    assert torch.allclose(result[2], subtraction[2], atol=1e-6) and torch.allclose(result[7], subtraction[7], atol=1e-6)
    reference = ext_sub_dense(dense64(plus), dense64(minus), 1.0)
    assert torch.isfinite(reference).all()
    assert relative_error(B, A, reference) < 1e-5


def test_opposite_rows_fall_back_to_subtraction():
    plus = random_module(10, 8, 4, 7)
    minus = LoraModule("m", plus.A.clone(), torch.randn(10, 4, generator=torch.Generator().manual_seed(8)))
    minus.B[4] = -2.0 * plus.B[4]  # W-_4 = −2·W+_4: u+ + u- = 0, no shared direction
    B, A = ext_sub_factors(plus, minus, 1.0)
    result = B.double() @ A.double()
    assert torch.isfinite(result).all()
    assert torch.allclose(result[4], 3.0 * dense64(plus)[4], atol=1e-5)
    reference = ext_sub_dense(dense64(plus), dense64(minus), 1.0)
    assert torch.isfinite(reference).all()
    assert relative_error(B, A, reference) < 1e-5


def test_nearly_opposite_rows_stay_finite_and_exact():
    plus = random_module(6, 8, 2, 9)
    minus = LoraModule("m", plus.A.clone(), -plus.B.clone())
    minus.B[0] += 1e-4  # almost, not exactly, opposite: the dense formula is ill-conditioned here
    B, A = ext_sub_factors(plus, minus, 1.0)
    reference = ext_sub_dense(dense64(plus), dense64(minus), 1.0)
    assert relative_error(B, A, reference) < 1e-5


# ---- real PEFT adapters on tiny models ---------------------------------------------------------


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("adapters") / "llama")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    return build_tiny_model("gpt2", tmp_path_factory.mktemp("adapters") / "gpt2")


def make_adapter(base_dir: Path, out: Path, *, seed: int, targets=LLAMA_TARGETS, **lora) -> Path:
    """A PEFT LoRA adapter on ``base_dir`` with random (non-zero) A and B, saved to ``out``."""
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(target_modules=targets, **lora))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(0.2 * torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(out)
    return out


def peft_deltas(base_dir: Path, adapter_dir: Path) -> dict[str, torch.Tensor]:
    """What PEFT itself adds to each module's weight, as [out, in], by module name."""
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    deltas = {}
    for name, module in model.base_model.model.named_modules():
        if isinstance(module, LoraLayer):
            delta = module.get_delta_weight("default").detach().double()
            deltas[name] = delta.T if module.fan_in_fan_out else delta
    return deltas


def test_combined_adapter_loads_with_peft_and_matches_formula(llama_dir, tmp_path):
    # Different ranks and scalings on purpose: rsLoRA on one, rank and alpha patterns on the other.
    expert = make_adapter(llama_dir, tmp_path / "expert", seed=1, r=4, lora_alpha=8, use_rslora=True)
    anti = make_adapter(llama_dir, tmp_path / "anti", seed=2, r=2, lora_alpha=16,
                        rank_pattern={"gate_proj": 6}, alpha_pattern={"k_proj": 3})
    out = combine_adapters(expert, anti, tmp_path / "ext-sub", op="ext-sub", alpha=1.0)
    assert out == tmp_path / "ext-sub"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 4 + 6  # padded to the largest r+ + r-
    assert config["rank_pattern"] == {} and not config["use_rslora"]
    provenance = json.loads((out / adapters.PROVENANCE_FILE).read_text())
    assert provenance["operation"] == "ext-sub" and provenance["alpha"] == 1.0

    plus, minus, got = peft_deltas(llama_dir, expert), peft_deltas(llama_dir, anti), peft_deltas(llama_dir, out)
    assert set(got) == set(plus) and len(got) == 2 * len(LLAMA_TARGETS)
    shapes = {delta.shape for delta in got.values()}
    assert len(shapes) >= 3 and any(h != w for h, w in shapes)  # square, k/v (GQA) and MLP shapes
    for name, delta in got.items():
        reference = ext_sub_dense(plus[name], minus[name], 1.0)
        assert float((delta - reference).norm() / reference.norm()) < 1e-5, name
    # read_adapter folds the same scalings PEFT applies.
    folded = read_adapter(anti)
    for name, module in folded.modules.items():
        assert torch.allclose(module.dense().double(), minus[name], rtol=1e-5, atol=1e-6), name


@pytest.fixture(scope="module")
def moe_dir(tmp_path_factory) -> Path:
    """A mixture-of-experts model with shared-expert modules beside its 3-D expert weights."""
    return build_tiny_model("qwen2_moe", tmp_path_factory.mktemp("adapters") / "qwen2_moe")


MOE_TARGETS = {"targets": ["q_proj", "v_proj", "gate_proj"],
               "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]}


def expert_deltas(base_dir: Path, adapter_dir: Path) -> dict[str, torch.Tensor]:
    """PEFT's own delta of every LoRA'd 3-D expert weight ([E, ...]), by wrapper name."""
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    return {name: module.get_delta_weight("default").detach().double()
            for name, module in model.base_model.model.named_modules() if isinstance(module, ParamWrapper)}


@pytest.mark.slow
@pytest.mark.parametrize("op", OPERATIONS)
def test_expert_lora_combines_expert_by_expert(moe_dir, tmp_path, op):
    expert = make_adapter(moe_dir, tmp_path / "expert", seed=5, r=2, lora_alpha=4, **MOE_TARGETS)
    anti = make_adapter(moe_dir, tmp_path / "anti", seed=6, r=3, lora_alpha=3, **MOE_TARGETS)
    read = read_adapter(expert)
    experts = {name: m.experts for name, m in read.modules.items() if m.experts > 1}
    assert experts and set(experts.values()) == {4} and all(m.rank == 2 for m in read.modules.values())
    out = combine_adapters(expert, None if op == "negation" else anti, tmp_path / op, op=op, alpha=0.7)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["target_parameters"] == MOE_TARGETS["target_parameters"]
    assert not any("experts" in module for module in config["target_modules"])
    # Each expert's pair equals the formula on that expert's deltas (Ext-Sub is per row, so per expert).
    plus, minus, got = read_adapter(expert), read_adapter(anti), read_adapter(out)
    for name, module in got.modules.items():
        assert module.experts == plus.modules[name].experts
        pluses, minuses = plus.modules[name].dense().double(), minus.modules[name].dense().double()
        if module.experts == 1:
            pluses, minuses = pluses[None], minuses[None]
        reference = torch.stack([dense_reference(op, p, None if op == "negation" else m, 0.7)
                                 for p, m in zip(pluses, minuses)]).reshape(module.dense().shape)
        assert float((module.dense().double() - reference).norm() / reference.norm()) < 1e-5, name
    # PEFT reads the layout written: its own deltas of the result follow from its deltas of the inputs.
    if op in ("subtraction", "negation"):
        before_plus, before_minus, after = (expert_deltas(moe_dir, expert), expert_deltas(moe_dir, anti),
                                            expert_deltas(moe_dir, out))
        assert after and set(after) == set(before_plus)
        for name, delta in after.items():
            reference = -0.7 * before_plus[name] if op == "negation" else before_plus[name] - 0.7 * before_minus[name]
            assert float((delta - reference).norm() / reference.norm()) < 1e-5, name


def test_conv1d_adapters_combine(gpt2_dir, tmp_path):
    # GPT-2's Conv1D stores weights transposed (fan_in_fan_out); rows are still output features.
    targets = ["c_attn", "c_fc", "c_proj"]
    expert = make_adapter(gpt2_dir, tmp_path / "e", seed=3, targets=targets, r=3, lora_alpha=6, fan_in_fan_out=True)
    anti = make_adapter(gpt2_dir, tmp_path / "a", seed=4, targets=targets, r=5, lora_alpha=5, fan_in_fan_out=True)
    out = combine_adapters(expert, anti, tmp_path / "out", op="subtraction", alpha=0.5)
    assert json.loads((out / "adapter_config.json").read_text())["fan_in_fan_out"] is True
    plus, minus, got = peft_deltas(gpt2_dir, expert), peft_deltas(gpt2_dir, anti), peft_deltas(gpt2_dir, out)
    for name, delta in got.items():
        reference = plus[name] - 0.5 * minus[name]
        assert float((delta - reference).norm() / reference.norm()) < 1e-5, name


def test_negation_takes_one_adapter(llama_dir, tmp_path):
    expert = make_adapter(llama_dir, tmp_path / "expert", seed=5, r=2, lora_alpha=4, targets=["q_proj"])
    out = combine_adapters(expert, None, tmp_path / "neg", op="negation", alpha=2.0)
    plus, got = peft_deltas(llama_dir, expert), peft_deltas(llama_dir, out)
    for name, delta in got.items():
        assert torch.allclose(delta, -2.0 * plus[name], atol=1e-6)
    with pytest.raises(UserError, match="one adapter"):
        combine_adapters(expert, expert, tmp_path / "neg2", op="negation")


# ---- refusals -----------------------------------------------------------------------------------


@pytest.fixture
def pair(llama_dir, tmp_path):
    return (make_adapter(llama_dir, tmp_path / "expert", seed=1, r=2, lora_alpha=4, targets=["q_proj", "v_proj"]),
            make_adapter(llama_dir, tmp_path / "anti", seed=2, r=2, lora_alpha=4, targets=["q_proj", "v_proj"]))


def test_different_target_modules_are_named(llama_dir, pair, tmp_path):
    expert, _ = pair
    q_only = make_adapter(llama_dir, tmp_path / "q_only", seed=3, r=2, lora_alpha=4, targets=["q_proj"])
    with pytest.raises(UserError, match=r"model\.layers\.0\.self_attn\.v_proj is adapted in .*expert but not in"):
        combine_adapters(expert, q_only, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_different_shapes_are_named(pair, tmp_path):
    expert, anti = pair
    config = json.loads((anti / "adapter_config.json").read_text())
    modules = read_adapter(anti).modules
    factors = {name: (m.B, m.A) for name, m in modules.items()}
    name = "model.layers.1.self_attn.v_proj"
    factors[name] = (torch.ones(5, 2), torch.ones(2, 32))
    adapters.write_adapter(tmp_path / "odd", config, factors)
    with pytest.raises(UserError, match=rf"{name} has shape 16×32 .* but 5×32"):
        combine_adapters(expert, tmp_path / "odd", tmp_path / "out")


def test_different_base_models_are_refused(pair, tmp_path):
    expert, anti = pair
    config_path = anti / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "some-org/another-model"
    config_path.write_text(json.dumps(config))
    with pytest.raises(UserError, match="different base models"):
        combine_adapters(expert, anti, tmp_path / "out")


def test_unsupported_adapters_are_refused(pair, tmp_path):
    expert, anti = pair
    config_path = anti / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(UserError, match="DoRA"):
        combine_adapters(expert, anti, tmp_path / "out")
    with pytest.raises(UserError, match="not a LoRA adapter folder"):
        combine_adapters(expert, tmp_path, tmp_path / "out")
    with pytest.raises(UserError, match="does not exist"):
        combine_adapters(tmp_path / "missing", anti, tmp_path / "out")


@pytest.mark.parametrize("op, alpha, message", [
    ("ext_sub", 1.0, "Unknown adapter operation"),
    ("ext-sub", -1.0, "alpha must be"),
    ("ext-sub", math.nan, "alpha must be"),
])
def test_bad_requests_are_refused(pair, tmp_path, op, alpha, message):
    expert, anti = pair
    with pytest.raises(UserError, match=message):
        combine_adapters(expert, anti, tmp_path / "out", op=op, alpha=alpha)
    with pytest.raises(UserError, match="needs an anti-expert"):
        combine_adapters(expert, None, tmp_path / "out", op="ext-sub")


def test_output_folder_is_checked(pair, tmp_path):
    expert, anti = pair
    with pytest.raises(UserError, match="one of the input adapters"):
        combine_adapters(expert, anti, anti)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(UserError, match="did not write: todo.txt"):
        combine_adapters(expert, anti, tmp_path / "notes")
    first = combine_adapters(expert, anti, tmp_path / "out")
    with pytest.raises(UserError, match="earlier adapter written by Unlearn Studio"):
        combine_adapters(expert, anti, first, op="addition")
    again = combine_adapters(expert, anti, first, op="addition", overwrite=True)  # asked: replaced
    assert json.loads((again / adapters.PROVENANCE_FILE).read_text())["operation"] == "addition"


def test_an_adapter_folder_the_app_did_not_write_is_never_replaced(pair, tmp_path):
    """The defect: an earlier export (adapter_config.json, a model card, the user's notes) was
    replaced whole by `extsub --out` because it held an adapter_config.json."""
    expert, anti = pair
    export = tmp_path / "my-export"
    shutil.copytree(expert, export)
    (export / "README.md").write_text("my model card")
    (export / "NOTES.txt").write_text("what I tried")
    before = {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()}
    for overwrite in (False, True):
        with pytest.raises(UserError, match="NOTES.txt"):
            combine_adapters(expert, anti, export, overwrite=overwrite)
    assert {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()} == before
