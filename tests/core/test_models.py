"""Model loading, facts, LoRA target discovery, layer selections and the info command."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from tiny_models import TINY_ARCHS, build_tiny_model, build_tiny_tokenizer  # noqa: E402

from unlearn_studio.core.cli import info  # noqa: E402
from unlearn_studio.core.errors import UserError  # noqa: E402
from unlearn_studio.core.model.loading import (
    attach_lora,
    describe_model_folder,
    ensure_pad_token,
    load_model,
    resolve_device,
)
from unlearn_studio.core.model.lora_targets import (
    find_lora_targets,
    fraction_to_layers,
    resolve_layers,
    scale_layer_range,
)

# Module names relative to a decoder layer, per role, per architecture.
EXPECTED_ROLES = {
    "llama": {
        "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
        "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
    },
    "gpt2": {
        "q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn",
        "o": "attn.c_proj", "up": "mlp.c_fc", "down": "mlp.c_proj",
    },
    "gpt_neox": {
        "q": "attention.query_key_value", "k": "attention.query_key_value",
        "v": "attention.query_key_value", "o": "attention.dense",
        "up": "mlp.dense_h_to_4h", "down": "mlp.dense_4h_to_h",
    },
    "opt": {
        "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
        "o": "self_attn.out_proj", "up": "fc1", "down": "fc2",
    },
    "phi": {
        "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
        "o": "self_attn.dense", "up": "mlp.fc1", "down": "mlp.fc2",
    },
}
EXPECTED_ROLES["mistral"] = EXPECTED_ROLES["qwen2"] = EXPECTED_ROLES["llama"]
LAYER_PREFIX = {
    "llama": "model.layers", "mistral": "model.layers", "qwen2": "model.layers",
    "gpt2": "transformer.h", "gpt_neox": "gpt_neox.layers", "opt": "model.decoder.layers",
    "phi": "model.layers",
}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(arch, root / arch) for arch in TINY_ARCHS}


@pytest.fixture(scope="module")
def loaded(tiny_dirs):
    return {arch: load_model(tiny_dirs[arch], device="cpu") for arch in TINY_ARCHS}


def test_tiny_models_are_deterministic(tiny_dirs, tmp_path):
    again = build_tiny_model("gpt2", tmp_path / "gpt2")
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_dirs["gpt2"] / name).read_bytes()


def _inputs(tokenizer, texts=("The saga of Eldoria", "Alice")):
    return tokenizer(list(texts), return_tensors="pt", padding=True)


# ---------------------------------------------------------------- loading and facts


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_load_forward_and_facts(arch, loaded, tiny_dirs):
    lm = loaded[arch]
    model, tok, facts = lm.model, lm.tokenizer, lm.facts
    assert not model.training
    assert lm.source == str(tiny_dirs[arch])

    batch = _inputs(tok)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (*batch["input_ids"].shape, len(tok))

    assert facts.model_type == arch
    assert facts.architecture == type(model).__name__
    assert facts.n_layers == 2
    assert facts.hidden_size == 32
    assert facts.vocab_size == len(tok)
    assert facts.n_params == sum(p.numel() for p in model.parameters())
    assert facts.dtype == "float32" and facts.device == "cpu"
    assert facts.layer_module_pattern == LAYER_PREFIX[arch] + ".{i}"
    assert json.loads(json.dumps(asdict(facts)))["lora_targets"] == facts.lora_targets


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_pad_token_without_resizing(arch, loaded):
    lm = loaded[arch]
    tok = lm.tokenizer
    # transformers 5 loads qwen2 folders with Qwen2Tokenizer, which pads with <|endoftext|>.
    assert tok.pad_token == ("<|endoftext|>" if arch == "qwen2" else tok.eos_token)
    assert tok.padding_side == "right"
    assert lm.model.get_input_embeddings().weight.shape[0] == len(tok) == 320
    assert lm.model.config.pad_token_id == tok.pad_token_id
    batch = _inputs(tok)
    assert batch["attention_mask"][1, -1] == 0  # the short row is padded on the right


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_describe_matches_loaded(arch, loaded, tiny_dirs):
    described = describe_model_folder(tiny_dirs[arch], device="cpu")
    assert described == loaded[arch].facts


def test_explicit_dtype(tiny_dirs):
    lm = load_model(tiny_dirs["llama"], dtype="bf16", device="cpu")
    assert lm.facts.dtype == "bfloat16"
    assert next(lm.model.parameters()).dtype == torch.bfloat16


# ---------------------------------------------------------------- target discovery


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_targets_per_role(arch, loaded):
    model = loaded[arch].model
    expected = EXPECTED_ROLES[arch]
    assert set(loaded[arch].facts.lora_targets) == set(expected)
    for role, rel in expected.items():
        names = find_lora_targets(model, roles=[role])
        assert names == [f"{LAYER_PREFIX[arch]}.{i}.{rel}" for i in range(2)]
        (suffix,) = loaded[arch].facts.lora_targets[role]
        assert rel == suffix or rel.endswith("." + suffix)
    all_names = find_lora_targets(model)
    assert len(all_names) == len(set(all_names)) == 2 * len(set(expected.values()))


def test_missing_role_names_roles_found(loaded):
    with pytest.raises(UserError, match=r"gate.*roles found: q, k, v, o, up, down"):
        find_lora_targets(loaded["gpt2"].model, roles=["q", "gate"])
    with pytest.raises(UserError, match="Unknown LoRA role"):
        find_lora_targets(loaded["llama"].model, roles=["attention"])


def test_layer_selection_restricts_targets(loaded):
    names = find_lora_targets(loaded["llama"].model, roles="q,v", layers="1-1")
    assert names == ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]


# ---------------------------------------------------------------- layer selections


def test_resolve_layers_forms():
    assert resolve_layers(None, 4) == [0, 1, 2, 3]
    assert resolve_layers("1-1", 2) == [1]
    assert resolve_layers("4-7", 32) == [4, 5, 6, 7]
    assert resolve_layers("4,5,7", 8) == [4, 5, 7]
    assert resolve_layers("0-1,5", 8) == [0, 1, 5]
    assert resolve_layers((2, 3), 8) == [2, 3]
    assert resolve_layers([3, 1], 8) == [1, 3]
    assert resolve_layers("0.5-1.0", 2) == [1]
    assert resolve_layers("0.125-0.25", 32) == [4, 5, 6, 7]
    assert resolve_layers("0.125-0.25", 8) == [1]
    assert resolve_layers("0-1", 8) == [0, 1]  # integers, not fractions, without a decimal point


def test_fraction_rounding():
    # Layer i spans [i/n, (i+1)/n): first = floor(a*n), last = ceil(b*n) - 1, at least one layer.
    assert fraction_to_layers(0.0, 1.0, 2) == (0, 1)
    assert fraction_to_layers(0.3, 0.3, 10) == (3, 3)
    assert fraction_to_layers(0.1, 0.2, 10) == (1, 1)
    assert fraction_to_layers(0.25, 0.3, 2) == (0, 0)
    assert fraction_to_layers(1.0, 1.0, 4) == (3, 3)


def test_scale_layer_range():
    assert scale_layer_range((4, 7), 32, 32) == (4, 7)
    assert scale_layer_range((4, 7), 32, 8) == (1, 1)
    assert scale_layer_range((4, 7), 32, 16) == (2, 3)
    assert scale_layer_range((4, 7), 32, 2) == (0, 0)
    assert scale_layer_range((30, 31), 32, 2) == (1, 1)
    assert scale_layer_range((4, 7), 32, 64) == (8, 15)
    with pytest.raises(UserError):
        scale_layer_range((4, 40), 32, 8)


@pytest.mark.parametrize("bad", ["2-3", "5", "3-1", "a-b", "0.5-1.5", (0, 2), (-1, 0), [0, 9]])
def test_bad_layer_range_names_layer_count(bad):
    with pytest.raises(UserError, match="2 layers"):
        resolve_layers(bad, 2)


# ---------------------------------------------------------------- LoRA


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_attach_lora(arch, tiny_dirs):
    lm = load_model(tiny_dirs[arch], device="cpu")
    batch = _inputs(lm.tokenizer)
    with torch.no_grad():
        base_logits = lm.model(**batch).logits
    expected = {f"base_model.model.{t}" for t in find_lora_targets(lm.model, layers="1-1")}
    peft_model = attach_lora(lm.model, r=4, alpha=8, layers="1-1")

    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(f".{LAYER_PREFIX[arch]}.1." in n for n in trainable)
    wrapped = {n.rsplit(".lora_", 1)[0] for n in trainable}
    assert wrapped == expected
    # Discovery still works on the wrapped model and names the wrapped projections.
    assert set(find_lora_targets(peft_model, layers="1-1")) == expected

    # Move the adapter away from its zero init so that "off" is a real test.
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
        with_adapter = peft_model(**batch).logits
        with peft_model.disable_adapter():
            without_adapter = peft_model(**batch).logits
    assert torch.allclose(without_adapter, base_logits, atol=1e-6)
    assert not torch.allclose(with_adapter, base_logits, atol=1e-4)


# ---------------------------------------------------------------- bad input


def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match="does not exist") as err:
        load_model(missing)
    assert str(missing) in str(err.value) and "allow network" in err.value.fix
    with pytest.raises(UserError, match="nowhere"):
        describe_model_folder(missing)


def test_folder_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json") as err:
        load_model(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_unsupported_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not_a_model"}))
    with pytest.raises(UserError, match="not_a_model") as err:
        load_model(tmp_path)
    assert str(tmp_path) in err.value.problem
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not_a_model", "auto_map": {}}))
    with pytest.raises(UserError, match="not_a_model") as err:
        describe_model_folder(tmp_path)
    assert "trust_remote_code" in err.value.fix


def test_unreadable_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="config.json"):
        load_model(tmp_path)


def test_not_a_causal_lm(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(UserError, match="encoder-decoder") as err:
        load_model(tmp_path)
    assert "decoder-only causal LM" in err.value.fix
    for encoder in ({"model_type": "bert", "is_decoder": True, "architectures": ["BertLMHeadModel"]},
                    {"model_type": "bert-generation"}):  # bert-generation has no masked-LM head to give it away
        (tmp_path / "config.json").write_text(json.dumps(encoder))
        with pytest.raises(UserError, match="is an encoder"):
            describe_model_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "trocr"}))
    with pytest.raises(UserError, match="decoder half of an encoder-decoder pair"):
        load_model(tmp_path)


def test_missing_tokenizer(tmp_path):
    folder = build_tiny_model("llama", tmp_path / "m", with_tokenizer=False)
    with pytest.raises(UserError, match="no tokenizer") as err:
        load_model(folder)
    assert str(folder) in err.value.problem and "tokenizer.json" in err.value.problem


def test_missing_weights(tiny_dirs, tmp_path):
    folder = tmp_path / "noweights"
    shutil.copytree(tiny_dirs["gpt2"], folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no weights") as err:
        load_model(folder)
    assert str(folder) in err.value.problem and "model.safetensors" in err.value.problem


def test_pad_token_outside_the_model_is_replaced():
    tok = build_tiny_tokenizer()
    tok.add_special_tokens({"pad_token": "<pad>"})  # id 320: the model has no row for it
    ensure_pad_token(tok, "tiny", vocab_rows=320)
    assert tok.pad_token == "</s>"


def test_tokenizer_with_no_usable_pad_token():
    class Bare:
        pad_token = eos_token = unk_token = bos_token = None

    with pytest.raises(UserError, match="no pad, eos, unk or bos"):
        ensure_pad_token(Bare(), "/models/bare")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_not_available(tiny_dirs):
    with pytest.raises(UserError, match="'cuda' is not available"):
        load_model(tiny_dirs["llama"], device="cuda")
    with pytest.raises(UserError, match="Unknown device 'tpu'"):
        resolve_device("tpu")


def test_unknown_dtype(tiny_dirs):
    with pytest.raises(UserError, match="Unknown dtype 'int3'"):
        load_model(tiny_dirs["llama"], dtype="int3")


# ---------------------------------------------------------------- info command


def _parse(argv):
    parser = argparse.ArgumentParser(prog="unlearn-studio")
    info.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_info_text(tiny_dirs, capsys):
    args = _parse(["info", str(tiny_dirs["gpt2"])])
    assert args.handler is info.run
    assert info.run(args) == 0
    out = capsys.readouterr().out
    assert "GPT2LMHeadModel" in out
    assert "transformer.h.0.attn.c_attn" in out and "mlp.c_proj" in out
    assert "gate  (none in this architecture)" in out
    assert "Layers:        2" in out


def test_info_layers_and_json(tiny_dirs, capsys):
    assert info.run(_parse(["info", str(tiny_dirs["llama"]), "--layers", "1", "--json"])) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["architecture"] == "LlamaForCausalLM"
    assert data["selected_layers"] == [1]
    assert data["targets"]["q"] == ["model.layers.1.self_attn.q_proj"]


def test_info_bad_layers(tiny_dirs):
    with pytest.raises(UserError, match="2 layers"):
        info.run(_parse(["info", str(tiny_dirs["llama"]), "--layers", "3-4"]))


def test_human_count():
    assert info.human_count(2_100_000) == "2.10M"
    assert info.human_count(7_241_732_096) == "7.24B"
    assert info.human_count(999) == "999"
