"""What a model folder (or hub id) holds, read from its config alone: a config transformers can load,
of a decoder-only causal language model. Encoders and seq2seq models are refused here, before any
weight is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import transformers
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from unlearn_studio.core.errors import UserError


def load_model_config(source: str, folder: Path | None, trust_remote_code: bool) -> transformers.PretrainedConfig:
    """AutoConfig for a folder or hub id, with the failures turned into UserErrors."""
    if folder is None:
        try:
            config = transformers.AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(
                f"Could not load the config of '{source}' from the Hugging Face Hub: {exc}",
                "Check the hub id, the network connection and trust_remote_code, or choose a local model folder",
            ) from exc
    else:
        config = _load_local_config(source, folder, trust_remote_code)
    check_causal_lm(config, source, trust_remote_code)
    return config


def _load_local_config(source: str, folder: Path, trust_remote_code: bool) -> transformers.PretrainedConfig:
    config_file = folder / "config.json"
    if not config_file.is_file():
        hint = " (it looks like a LoRA adapter folder)" if (folder / "adapter_config.json").is_file() else ""
        raise UserError(
            f"Model folder '{source}' has no config.json{hint}",
            "Choose the folder of a base model: it holds config.json, the weights and the tokenizer",
        )
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("it is not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(
            f"Could not read '{config_file}': {exc}",
            "Restore config.json from the model's original download",
        ) from exc
    try:
        return transformers.AutoConfig.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (ValueError, KeyError) as exc:
        model_type = raw.get("model_type", "(none given)")
        if "auto_map" in raw and not trust_remote_code:
            fix = "This model ships its own code: turn on trust_remote_code if you trust its source"
        else:
            fix = "Use a model whose model_type this version of transformers supports, or upgrade transformers"
        raise UserError(
            f"Model '{source}' has model_type '{model_type}', which transformers "
            f"{transformers.__version__} does not support",
            fix,
        ) from exc
    except OSError as exc:
        raise UserError(
            f"Could not read the config of model folder '{source}': {exc}",
            "Restore config.json from the model's original download",
        ) from exc


# Decoders made to sit behind a separate encoder (TrOCR reads what a vision encoder saw).
DECODERS_OF_PAIRS = ("trocr",)


def _bert_style(config: transformers.PretrainedConfig) -> bool:
    """BERT-style configs define both is_decoder and add_cross_attention as class defaults; decoder-only
    LMs do not (gpt_neox sets is_decoder alone, gpt2 add_cross_attention alone). The class defaults
    are read, because an old config.json may carry either key for any model. Catches
    bert-generation, which has no masked-LM head to give it away."""
    try:
        defaults = type(config)()
    except (TypeError, ValueError):  # a config class that needs arguments: no verdict from defaults
        return False
    return getattr(defaults, "is_decoder", None) is not None and getattr(defaults, "add_cross_attention", None) is not None


def check_causal_lm(config: transformers.PretrainedConfig, source: str, trust_remote_code: bool) -> None:
    """Refuse, from the config alone, a model that is not a decoder-only causal LM.

    transformers gives encoders (BERT, RoBERTa, ELECTRA, ...) and the decoders of seq2seq families
    (BART, mBART, ...) a ForCausalLM class too, but those are not language models that continue a
    text: the encoders read a whole text at once and fill in masked words, and a seq2seq decoder
    answers an encoder's input. A model type that also has a masked-LM or a seq2seq head is one
    of those.
    """
    needed = "Choose a decoder-only causal LM such as llama, mistral, qwen2, gemma, phi, gpt2, gpt_neox or opt"
    model_type = config.model_type
    if getattr(config, "is_encoder_decoder", False) or model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(f"Model '{source}' (model_type '{model_type}') is an encoder-decoder (seq2seq) model: it "
                        "writes an output for a separate input, and Unlearn Studio unlearns from models that "
                        "continue a text", needed)
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES or _bert_style(config):
        raise UserError(f"Model '{source}' (model_type '{model_type}') is an encoder: it reads a whole text at "
                        "once and fills in masked words, even with a language-model head on top; Unlearn Studio "
                        "unlearns from models that continue a text", needed)
    if model_type in DECODERS_OF_PAIRS:
        raise UserError(f"Model '{source}' (model_type '{model_type}') is the decoder half of an encoder-decoder "
                        "pair: it writes an output for what its encoder read; Unlearn Studio unlearns from models "
                        "that continue a text", needed)
    remote = trust_remote_code and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    if not remote and type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise UserError(
            f"Model '{source}' (model_type '{model_type}') is not a causal language model", needed,
        )
