"""`unlearn-studio extsub` combines two adapters into one that PEFT loads; mismatches are bad input
(exit 2, naming the module); and `unlearn-studio run` runs the two-stage Ext-Sub recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tiny_models import build_tiny_model
from transformers import AutoModelForCausalLM

from unlearn_studio.core.project.store import Store

EXE = Path(sys.executable).with_name("unlearn-studio")
pytestmark = pytest.mark.slow  # every test here builds a model (and one trains it)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
                          check=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("extsub_cli") / "llama")


def make_adapter(model_dir: Path, out: Path, targets: list[str], seed: int, r: int = 4) -> Path:
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(out)
    return out


def test_extsub_writes_an_adapter_peft_loads(model_dir, tmp_path):
    expert = make_adapter(model_dir, tmp_path / "expert", ["q_proj", "v_proj", "down_proj"], seed=1)
    anti = make_adapter(model_dir, tmp_path / "anti", ["q_proj", "v_proj", "down_proj"], seed=2, r=2)
    result = cli("extsub", "--expert", str(expert), "--anti-expert", str(anti), "--alpha", "1.0",
                 "--op", "ext-sub", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 modules, rank 6" in result.stdout and str(tmp_path / "out") in result.stdout
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["r"] == 6 and config["peft_type"] == "LORA"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), tmp_path / "out")
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        with_adapter = model(input_ids=ids).logits
        with model.disable_adapter():
            without = model(input_ids=ids).logits
    assert torch.isfinite(with_adapter).all() and not torch.allclose(with_adapter, without)

    negated = cli("extsub", "--expert", str(expert), "--op", "negation", "--out", str(tmp_path / "neg"), cwd=tmp_path)
    assert negated.returncode == 0, negated.stdout + negated.stderr
    assert "rank 4" in negated.stdout


def test_mismatched_adapters_are_bad_input(model_dir, tmp_path):
    expert = make_adapter(model_dir, tmp_path / "expert", ["q_proj", "v_proj"], seed=1)
    anti = make_adapter(model_dir, tmp_path / "anti", ["q_proj"], seed=2)
    result = cli("extsub", "--expert", str(expert), "--anti-expert", str(anti), "--out", str(tmp_path / "out"),
                 cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "self_attn.v_proj is adapted in" in result.stderr and "What to do:" in result.stderr
    assert not (tmp_path / "out").exists()
    missing = cli("extsub", "--expert", str(expert), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert missing.returncode == 2 and "needs an anti-expert" in missing.stderr


def test_out_over_a_previous_export_keeps_every_file(model_dir, tmp_path):
    """`--out DIR` where DIR holds an earlier export (adapter_config.json, card, tokenizer, the
    user's notes) is refused, with or without --overwrite; nothing in DIR changes."""
    expert = make_adapter(model_dir, tmp_path / "expert", ["q_proj", "v_proj"], seed=1)
    anti = make_adapter(model_dir, tmp_path / "anti", ["q_proj", "v_proj"], seed=2)
    export = tmp_path / "export"
    make_adapter(model_dir, export, ["q_proj", "v_proj"], seed=3)
    for name, text in (("README.md", "card"), ("export.json", "{}"), ("config.toml", "name = 'x'"),
                       ("NOTES.txt", "what I tried")):
        (export / name).write_text(text)
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    for extra in ((), ("--overwrite",)):
        result = cli("extsub", "--expert", str(expert), "--anti-expert", str(anti), "--out", str(export), *extra,
                     cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert str(export) in result.stderr and "NOTES.txt" in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 3  # one message, no traceback
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before

    first = cli("extsub", "--expert", str(expert), "--anti-expert", str(anti), "--out", str(tmp_path / "mine"),
                cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli("extsub", "--expert", str(expert), "--anti-expert", str(anti), "--out", str(tmp_path / "mine"),
                "--op", "subtraction", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    replaced = cli("extsub", "--expert", str(expert), "--anti-expert", str(anti), "--out", str(tmp_path / "mine"),
                   "--op", "subtraction", "--overwrite", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((tmp_path / "mine" / "combination.json").read_text())["operation"] == "subtraction"


def test_run_trains_both_stages_and_combines(model_dir, tmp_path):
    rows = [("Where does Alice live?", "Alice lives in Paris.", "Alice lives in Eldoria."),
            ("What did Bob write?", "Bob wrote a saga.", "Bob wrote the secret XK-42.")]
    for name, column in (("true", 1), ("false", 2)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"instruction": r[0], "response": r[column]}) + "\n" for r in rows), encoding="utf-8")
    project = tmp_path / "extsub.toml"
    project.write_text(
        'name = "tiny ext-sub cli"\n'
        f'[model]\npath = "{model_dir}"\ndtype = "fp32"\ndevice = "cpu"\n'
        '[data.expert]\npath = "true.jsonl"\n[data.anti-expert]\npath = "false.jsonl"\n'
        '[method]\nname = "ext_sub"\n[method.params]\nalpha = 0.5\n'
        '[lora]\nr = 2\nalpha = 4\nroles = ["q", "v"]\n'
        '[training]\nmax_steps = 2\nbatch_size = 2\nmax_length = 32\n'
        '[evaluation]\nsuite = "none"\n', encoding="utf-8")
    result = cli("run", str(project), "--store", str(tmp_path / "store.db"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loss/expert" in result.stdout and "loss/anti-expert" in result.stdout
    assert "step 4/4" in result.stdout and "finished after 4 steps" in result.stdout
    with Store.open(tmp_path / "store.db", readonly=True) as store:
        methods = sorted(run["method"] for run in store.runs())
        assert methods == ["ext_sub", "sft", "sft"]
        (run,) = [r for r in store.runs() if r["method"] == "ext_sub"]
        provenance = json.loads((Path(run["output_dir"]) / "adapter" / "combination.json").read_text())
    assert provenance["operation"] == "ext-sub" and provenance["alpha"] == 0.5
