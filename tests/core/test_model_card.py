"""The export's model card: the base model named by its Hub id when one is known (never a path of this
computer), the base model's license, and the metadata the Hub's schema takes (model-index)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import yaml

from unlearn_studio.core.model.adapter_files import portable_adapter_config
from unlearn_studio.core.model.portable import make_model_config_portable, make_tokenizer_portable
from unlearn_studio.core.project.config import ModelConfig, RunConfig
from unlearn_studio.core.results.model_card import base_model_of, model_index_results


def model_folder(path: Path, config: dict | None = None, card: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                                                  **(config or {})}))
    if card is not None:
        (path / "README.md").write_text(card, encoding="utf-8")
    return path


def config_for(path: str, **model) -> RunConfig:
    return RunConfig(name="x", model=ModelConfig(path=path, **model))


def test_a_hub_download_in_the_cache_is_named_by_its_id(tmp_path):
    folder = model_folder(tmp_path / "hub" / "models--Qwen--Qwen3-0.6B" / "snapshots" / "abc123")
    base = base_model_of(config_for(str(folder)))
    assert base.hub_id == "Qwen/Qwen3-0.6B" and "cache" in base.found_by
    assert base.local_path == str(folder) and base.model_type == "llama"


def test_name_or_path_names_the_hub_id_only_when_it_is_one(tmp_path):
    named = model_folder(tmp_path / "a", {"_name_or_path": "meta-llama/Llama-3.2-1B"})
    assert base_model_of(config_for(str(named))).hub_id == "meta-llama/Llama-3.2-1B"
    for not_an_id in ("/home/me/models/llama", "llama", "./models/x", "C:\\models\\x"):
        folder = model_folder(tmp_path / f"b{len(not_an_id)}", {"_name_or_path": not_an_id})
        base = base_model_of(config_for(str(folder)))
        assert base.hub_id is None and "local folder" in base.found_by


def test_a_project_that_loads_by_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "org/name" is no folder here
    base = base_model_of(config_for("org/name", allow_network=True))
    assert (base.hub_id, base.local_path) == ("org/name", None)


def test_the_license_comes_from_the_base_models_own_card(tmp_path):
    folder = model_folder(tmp_path / "m", card="---\nlicense: llama3.2\ntags:\n- x\n---\n# A model\n")
    assert base_model_of(config_for(str(folder))).license == "llama3.2"
    bare = model_folder(tmp_path / "n", card="# No metadata\n")
    assert base_model_of(config_for(str(bare))).license is None


def test_the_demo_model_has_no_hub_id():
    base = base_model_of(config_for("demo"))
    assert base.hub_id is None and "demo" in base.name and "not on the Hub" in base.found_by
    assert base.license == "apache-2.0"


def test_the_adapter_config_names_the_hub_id_or_nothing_and_keeps_what_differs_from_peft_defaults():
    original = {"base_model_name_or_path": "/home/me/models/llama", "r": 8, "lora_alpha": 16.0, "peft_type": "LORA",
                "task_type": "CAUSAL_LM", "target_modules": ["q_proj"], "alora_invocation_tokens": None,
                "use_dora": False, "target_parameters": ["mlp.experts.gate_up_proj"], "peft_version": "0.21.2"}
    portable = portable_adapter_config(original, "org/name")
    assert portable == {"base_model_name_or_path": "org/name", "r": 8, "lora_alpha": 16.0, "peft_type": "LORA",
                        "task_type": "CAUSAL_LM", "target_modules": ["q_proj"],
                        "target_parameters": ["mlp.experts.gate_up_proj"]}
    assert portable_adapter_config(original, None)["base_model_name_or_path"] is None
    assert original["base_model_name_or_path"] == "/home/me/models/llama"  # the run's own file is untouched


def test_model_index_has_before_and_after_per_headline_metric():
    row = SimpleNamespace(key="forget/value_acc", label="forget: value accuracy", role="forget",
                          before=0.9, after=0.1)
    missing = SimpleNamespace(key="retain/rouge", label="retain: ROUGE", role="retain", before=0.5,
                              after=float("nan"))
    config = RunConfig.from_dict({"name": "x", "data": {"forget": {"path": "data/forget10.jsonl"}}})
    results = model_index_results(SimpleNamespace(headline=[row, missing]), config)
    assert [(r.metric_type, r.metric_value, r.dataset_type) for r in results] == [
        ("forget/value_acc", 0.1, "forget10.jsonl"), ("forget/value_acc", 0.9, "forget10.jsonl"),
        ("retain/rouge", 0.5, "retain")]
    assert "with this adapter" in results[0].metric_name and "before" in results[1].metric_name


def test_tokenizer_config_is_rewritten_for_transformers_4(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "backend": "tokenizers", "tokenizer_class": "TokenizersBackend", "is_local": True,
        "extra_special_tokens": ["<|user|>"], "eos_token": "</s>"}))
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    changes = make_tokenizer_portable(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config == {"tokenizer_class": "PreTrainedTokenizerFast", "additional_special_tokens": ["<|user|>"],
                      "eos_token": "</s>", "chat_template": "{{ messages }}"}
    assert not (tmp_path / "chat_template.jinja").exists() and len(changes) == 5
    # A class 4.x has (a model's own tokenizer class) is kept.
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Qwen2Tokenizer"}))
    assert make_tokenizer_portable(tmp_path) == []
    assert yaml.safe_load((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "Qwen2Tokenizer"


def test_rope_settings_are_written_where_transformers_4_reads_them(tmp_path):
    def written(config: dict) -> dict:
        (tmp_path / "config.json").write_text(json.dumps(config))
        make_model_config_portable(tmp_path)
        return json.loads((tmp_path / "config.json").read_text())

    llama3 = {"factor": 8.0, "rope_theta": 500000.0, "rope_type": "llama3", "original_max_position_embeddings": 8192}
    config = written({"model_type": "llama", "rope_parameters": llama3})
    assert config["rope_theta"] == 500000.0 and config["rope_parameters"] == llama3
    assert config["rope_scaling"] == {"factor": 8.0, "rope_type": "llama3", "original_max_position_embeddings": 8192}
    neox = written({"model_type": "gpt_neox",
                    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.5}})
    assert (neox["rotary_pct"], neox["partial_rotary_factor"], "rope_scaling" in neox) == (0.5, 0.5, False)
    kept = written({"model_type": "llama", "rope_theta": 1.0, "rope_parameters": {"rope_theta": 2.0}})
    assert kept["rope_theta"] == 1.0  # a value already there is never changed
    assert make_model_config_portable(tmp_path) == []
