"""Bad model and adapter folders get one message, exit 2 and nothing written: a pickled
pytorch_model.bin as base weights or as an adapter (never unpickled unsafely, and torch's advice to
do so never shown), a pickled list as an adapter, and an adapter trained on another base model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file
from tiny_models import build_tiny_model, build_tiny_tokenizer

from unlearn_studio.core.cli.main import main
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.loading import attach_lora, load_adapter, load_model

pytestmark = pytest.mark.slow  # builds models


class RunsCode:
    """Unpickling this would create a file: the proof that a pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("llama") / "llama")


@pytest.fixture(scope="module")
def adapter_dir(llama_dir, tmp_path_factory) -> Path:
    model = attach_lora(load_model(llama_dir, device="cpu").model, r=2, alpha=4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    folder = tmp_path_factory.mktemp("adapter") / "adapter"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def wider_llama_dir(tmp_path_factory) -> Path:
    """A llama with the same module names and a hidden size of 48: another base model."""
    folder = tmp_path_factory.mktemp("wide") / "llama48"
    tokenizer = build_tiny_tokenizer()
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=128)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def copy_with(folder: Path, target: Path, drop: str) -> Path:
    shutil.copytree(folder, target)
    (target / drop).unlink()
    return target


def no_unsafe_advice(error: UserError) -> None:
    text = f"{error.problem} {error.fix}"
    assert "weights_only" not in text and "trust" not in text.split("where you trust")[0]


def test_plain_pickled_base_weights_load(llama_dir, tmp_path):
    folder = copy_with(llama_dir, tmp_path / "bin", "model.safetensors")
    torch.save(load_file(llama_dir / "model.safetensors"), folder / "pytorch_model.bin")
    assert load_model(folder, device="cpu").model is not None


def test_pickled_base_weights_holding_code_are_refused(llama_dir, tmp_path):
    marker = tmp_path / "code-ran"
    folder = copy_with(llama_dir, tmp_path / "evil", "model.safetensors")
    torch.save({**load_file(llama_dir / "model.safetensors"), "extra": RunsCode(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match="pickle") as err:
        load_model(folder, device="cpu")
    assert not marker.exists()
    assert "safetensors" in err.value.fix
    no_unsafe_advice(err.value)


def test_pickled_adapter_holding_code_is_refused(llama_dir, adapter_dir, tmp_path):
    marker = tmp_path / "code-ran"
    folder = copy_with(adapter_dir, tmp_path / "evil", "adapter_model.safetensors")
    torch.save({**load_file(adapter_dir / "adapter_model.safetensors"), "x": RunsCode(marker)},
               folder / "adapter_model.bin")
    with pytest.raises(UserError, match="pickle that holds more than tensors") as err:
        load_adapter(load_model(llama_dir, device="cpu").model, folder)
    assert not marker.exists()
    no_unsafe_advice(err.value)


def test_pickled_list_as_adapter_is_refused(llama_dir, adapter_dir, tmp_path):
    folder = copy_with(adapter_dir, tmp_path / "list", "adapter_model.safetensors")
    torch.save(list(load_file(adapter_dir / "adapter_model.safetensors").values()), folder / "adapter_model.bin")
    with pytest.raises(UserError, match="holds a list, not a mapping of weight names to tensors"):
        load_adapter(load_model(llama_dir, device="cpu").model, folder)


def test_a_plain_pickled_adapter_still_loads(llama_dir, adapter_dir, tmp_path):
    folder = copy_with(adapter_dir, tmp_path / "old-peft", "adapter_model.safetensors")
    torch.save(load_file(adapter_dir / "adapter_model.safetensors"), folder / "adapter_model.bin")
    model = load_adapter(load_model(llama_dir, device="cpu").model, folder)
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_adapter_of_another_base_is_named(adapter_dir, wider_llama_dir):
    with pytest.raises(UserError, match="trained on a different base model") as err:
        load_adapter(load_model(wider_llama_dir, device="cpu").model, adapter_dir)
    assert re.search(r"its lora_A for model\.layers\.0\.\S+ is 2x\d+, the model's module needs 2x(48|96)",
                     err.value.problem)


def test_adapter_of_another_architecture_is_named(adapter_dir, tmp_path):
    gpt2 = build_tiny_model("gpt2", tmp_path / "gpt2")
    with pytest.raises(UserError, match="does not have"):
        load_adapter(load_model(gpt2, device="cpu").model, adapter_dir)


def test_eval_with_a_mismatched_adapter_exits_2_and_writes_nothing(adapter_dir, wider_llama_dir, tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["eval", "--model", str(wider_llama_dir), "--adapter", str(adapter_dir), "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "error: The adapter in" in err and "different base model" in err and "Traceback" not in err
