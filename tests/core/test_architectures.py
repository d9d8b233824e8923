"""Seventeen architectures built locally (dense, fused-projection and mixture-of-experts): what LoRA
adapts by default (`info` and the plan), experts' 3-D weights through PEFT target_parameters, the
adapter switched off giving the original model back, refusals of encoders and seq2seq models, and a
3-step run with the default roles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from tiny_models import ALL_ARCHS, MOE_ARCHS, NOT_CAUSAL, build_tiny_model

from unlearn_studio.core.cli import info
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.loading import attach_lora, describe_model_folder, load_adapter, load_model
from unlearn_studio.core.model.lora_plan import plan_lora
from unlearn_studio.core.project.config import LoraConfig

pytestmark = pytest.mark.slow  # every test here builds models

NO_GATE = {"gpt2", "gpt_neox", "opt", "phi", "falcon", "bloom", "gptj"}
EXPERTS_ONLY_MLP = {"mixtral", "qwen3_moe", "olmoe"}  # the MLP lives only in the experts' 3-D weights


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("archs")
    return {arch: build_tiny_model(arch, root / arch) for arch in ALL_ARCHS + NOT_CAUSAL}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_info(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    info.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["info", *argv, "--json"])
    return args


def info_json(folder: Path, capsys, *extra: str) -> dict:
    args = run_info([str(folder), *extra])
    assert info.run(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_default_roles_are_what_the_model_has(arch, model_dirs, capsys):
    facts = info_json(model_dirs[arch], capsys)
    plan = facts["lora_plan"]
    expected = ["q", "k", "v", "o", "up", "down"] if arch in NO_GATE else ["q", "k", "v", "o", "gate", "up", "down"]
    assert plan["roles"] == expected and plan["auto"]
    assert plan["lacks"] == (["gate"] if arch in NO_GATE else [])
    assert "every projection this" in facts["lora_summary"]
    if arch in MOE_ARCHS:
        assert plan["parameters"] and all(".experts." in name for name in plan["parameters"])
        assert "target_parameters" in facts["lora_summary"]
        assert set(facts["expert_targets"]) == {"gate", "up", "down"}
    else:
        assert not plan["parameters"] and not facts["expert_targets"]
    if arch in EXPERTS_ONLY_MLP:
        assert not any(r in facts["lora_targets"] for r in ("gate", "up", "down"))


def test_explicit_roles_stay_strict(model_dirs):
    model = load_model(model_dirs["gpt2"], device="cpu").model
    with pytest.raises(UserError, match=r"no module for role\(s\) gate"):
        plan_lora(model, ["q", "gate"])
    with pytest.raises(UserError, match="mix"):
        plan_lora(model, ["auto", "q"])
    assert plan_lora(model, ["q", "v"]).roles == ["q", "v"]
    assert plan_lora(model, "auto").roles == plan_lora(model, None).roles == plan_lora(model, ["auto"]).roles


def test_experts_left_out_with_dropout_say_why(model_dirs, capsys):
    facts = info_json(model_dirs["mixtral"], capsys, "--dropout", "0.05")
    assert facts["lora_plan"]["roles"] == ["q", "k", "v", "o"] and not facts["lora_plan"]["parameters"]
    summary = facts["lora_summary"]
    assert "only attention is adapted" in summary and "lora.dropout = 0" in summary
    model = load_model(model_dirs["mixtral"], device="cpu").model
    with pytest.raises(UserError, match="experts' 3-D weights") as err:
        plan_lora(model, ["q", "gate"], dropout=0.05)
    assert "lora.dropout = 0" in err.value.fix
    # A role a shared expert fills as a module is kept; only the experts' part is left out.
    plan = plan_lora(load_model(model_dirs["qwen2_moe"], device="cpu").model, None, dropout=0.05)
    assert "gate" in plan.roles and not plan.parameters and plan.experts_left_out


def test_info_text_names_expert_weights(model_dirs, capsys):
    assert info.run(argparse.Namespace(model=str(model_dirs["qwen3_moe"]), layers=None, json=False, roles="auto",
                                       dropout=0.0, allow_network=False, trust_remote_code=False)) == 0
    out = capsys.readouterr().out
    assert "experts.gate_up_proj" in out and "expert weights (3-D)" in out
    assert "(none in this architecture)" not in out


@pytest.mark.parametrize("arch", MOE_ARCHS)
def test_expert_lora_trains_switches_off_and_reloads(arch, model_dirs, tmp_path):
    loaded = load_model(model_dirs[arch], device="cpu")
    ids = loaded.tokenizer(["Alice lives in Paris.", "The saga of the dragon."], return_tensors="pt", padding=True)
    with torch.no_grad():
        base = loaded.model(**ids).logits.clone()
    model = attach_lora(loaded.model, r=2, alpha=4)
    expert_params = [n for n, p in model.named_parameters() if p.requires_grad and ".experts." in n]
    assert expert_params
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        model(**ids, labels=ids["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        adapted = model(**ids).logits.clone()
        with model.disable_adapter():
            off = model(**ids).logits.clone()
    assert not torch.allclose(adapted, base, atol=1e-4)
    assert torch.equal(off, base)  # the original model, exactly
    model.save_pretrained(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["target_parameters"]
    again = load_adapter(load_model(model_dirs[arch], device="cpu").model, tmp_path / "adapter")
    with torch.no_grad():
        assert torch.allclose(again(**ids).logits, adapted, atol=1e-6)


@pytest.mark.parametrize("arch", NOT_CAUSAL)
def test_encoders_and_seq2seq_are_refused_before_loading(arch, model_dirs):
    kind = {"bert": "is an encoder", "t5": "encoder-decoder"}[arch]
    for call in (load_model, describe_model_folder):
        with pytest.raises(UserError, match=kind) as err:
            call(model_dirs[arch], device="cpu")
        assert "decoder-only causal LM" in err.value.fix
def test_the_default_roles_are_auto():
    assert LoraConfig().roles == ["auto"]


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_three_step_run_with_default_roles(arch, model_dirs, tmp_path):
    from unlearn_studio.core.events import LogEvent
    from unlearn_studio.core.project.config import (
        DataSource,
        EvalConfig,
        MethodConfig,
        ModelConfig,
        OutputConfig,
        RunConfig,
        TrainingConfig,
    )
    from unlearn_studio.core.run.runner import execute

    forget = tmp_path / "forget.jsonl"
    forget.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in (
        ("Where does Alice live?", "Alice lives in Paris."), ("What did Bob write?", "A saga about a dragon."))))
    config = RunConfig(name=f"arch {arch}", model=ModelConfig(path=str(model_dirs[arch]), device="cpu"),
                       data={"forget": DataSource(str(forget))}, method=MethodConfig("grad_ascent"),
                       lora=LoraConfig(r=2, alpha=4.0),
                       training=TrainingConfig(max_steps=3, batch_size=2, max_length=32, checkpoint_every=100),
                       evaluation=EvalConfig(suite="none"), output=OutputConfig(str(tmp_path / "runs")))
    logs: list[str] = []
    result = execute(config, listener=lambda e: logs.append(e.message) if isinstance(e, LogEvent) else None)
    assert result.status == "finished", result.error
    assert result.steps == 3
    summary = next(m for m in logs if m.startswith("LoRA on"))
    assert "every projection this" in summary
    assert ("target_parameters" in summary) == (arch in MOE_ARCHS)
