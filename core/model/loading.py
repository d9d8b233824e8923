"""Load a base causal LM and its tokenizer, describe it, and attach LoRA.

Offline first: ``source`` is a local folder unless the caller allows network access, in which
case a name that is not a folder is treated as a Hugging Face Hub id. Every problem with the
input (missing folder, config, tokenizer or weights, unsupported architecture, unavailable
device) raises ``UserError`` naming the path and what to do, before anything is written.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from safetensors import SafetensorError
from torch import nn
from transformers.pytorch_utils import Conv1D

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.adapter_files import adapter_load_errors, check_adapter_fits
from unlearn_studio.core.model.building import building_models
from unlearn_studio.core.model.devices import dtype_name, resolve_device, resolve_dtype
from unlearn_studio.core.model.lora_plan import plan_lora
from unlearn_studio.core.model.lora_targets import (
    LayerSelection,
    discover_expert_roles,
    discover_roles,
    find_decoder_layers,
    layer_module_pattern,
)
from unlearn_studio.core.model.memory_savers import keep_trainable, quantized_load_arguments
from unlearn_studio.core.model.model_config import load_model_config

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass
class ModelFacts:
    """What the GUI and CLI show about a model; plain values, so ``asdict`` gives JSON."""

    architecture: str  # e.g. "LlamaForCausalLM"
    model_type: str  # e.g. "llama"
    n_params: int  # all parameters, tied weights counted once
    n_layers: int
    hidden_size: int
    vocab_size: int  # rows of the input embedding
    dtype: str  # e.g. "float32"
    device: str  # "cpu", "cuda", "mps"; for describe_model_folder, where load_model would put it
    lora_targets: dict[str, list[str]] = field(default_factory=dict)  # role -> module-name suffixes
    layer_module_pattern: str = ""  # e.g. "model.layers.{i}"
    expert_targets: dict[str, list[str]] = field(default_factory=dict)  # role -> 3-D expert weight suffixes


@dataclass
class LoadedModel:
    """A base model in eval mode, its tokenizer (pad token set, padding on the right) and facts."""

    model: transformers.PreTrainedModel
    tokenizer: Any
    facts: ModelFacts
    source: str


# ---------------------------------------------------------------- config


def _local_folder(source: str, allow_network: bool) -> Path | None:
    """The folder to load from, or None for a hub id (only when network access is allowed)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if not allow_network:
        raise UserError(
            f"Model folder '{source}' does not exist",
            "Choose a folder that holds config.json and the weights, "
            f"or allow network access to load '{source}' as a hub id",
        )
    return None


def require_model_files(folder: Path, source: str) -> None:
    """Check for tokenizer and weight files up front, to name exactly what is missing."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"Model folder '{source}' has no tokenizer (looked for {', '.join(TOKENIZER_FILES)})",
            "Copy the tokenizer files from the model's original download into the folder",
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise UserError(
            f"Model folder '{source}' has no weights (looked for {', '.join(WEIGHT_FILES)})",
            "Copy the weight files from the model's original download into the folder",
        )


# ---------------------------------------------------------------- tokenizer


def ensure_pad_token(tokenizer: Any, source: str = "the model", vocab_rows: int | None = None) -> None:
    """Give a tokenizer without a usable pad token one, reusing eos, else unk, else bos.

    Reusing an existing token means the embedding matrix is not resized, so the base weights
    stay exactly the original ones; padded positions are masked by attention_mask and labels.
    With ``vocab_rows`` (the model's embedding rows), a pad token whose id the model has no row
    for (some tokenizer classes add a default pad token) is replaced the same way.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token is not None else None
    if pad_id is not None and (vocab_rows is None or pad_id < vocab_rows):
        return
    for name in ("eos_token", "unk_token", "bos_token"):
        token = getattr(tokenizer, name, None)
        token_id = getattr(tokenizer, f"{name}_id", None)
        if token is not None and (vocab_rows is None or (token_id is not None and token_id < vocab_rows)):
            tokenizer.pad_token = token
            return
    raise UserError(
        f"The tokenizer of '{source}' has no pad, eos, unk or bos token to pad with",
        "Use a tokenizer that defines at least an eos token (set eos_token in tokenizer_config.json)",
    )


def _load_tokenizer(location: str, source: str, local_only: bool, trust_remote_code: bool) -> Any:
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            location, local_files_only=local_only, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(
            f"Could not load the tokenizer of '{source}': {exc}",
            "Copy the tokenizer files from the model's original download into the folder",
        ) from exc
    # Right padding for training: prompts are followed by their answers, labels line up with
    # input positions. Batched generation should switch to "left" for the call.
    tokenizer.padding_side = "right"
    return tokenizer


def load_tokenizer(source: str | Path, *, trust_remote_code: bool = False, allow_network: bool = False) -> Any:
    """The tokenizer of a model folder (or, if allowed, a hub id), with a safe pad token."""
    source = str(source)
    folder = _local_folder(source, allow_network)
    if folder is not None and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"Folder '{source}' has no tokenizer (looked for {', '.join(TOKENIZER_FILES)})",
            "Give the folder of a model or tokenizer saved with save_pretrained",
        )
    tokenizer = _load_tokenizer(str(folder or source), source, folder is not None, trust_remote_code)
    ensure_pad_token(tokenizer, source)
    return tokenizer


# ---------------------------------------------------------------- facts


def model_facts(model: nn.Module, *, dtype: str | None = None, device: str | None = None) -> ModelFacts:
    """Facts of a built model; ``dtype``/``device`` override what the parameters say (meta models)."""
    config = model.config
    _, layers = find_decoder_layers(model)
    first = next(model.parameters())
    embeddings = model.get_input_embeddings()
    return ModelFacts(
        architecture=type(model).__name__,
        model_type=str(config.model_type),
        n_params=sum(p.numel() for p in model.parameters()),
        n_layers=len(layers),
        hidden_size=int(config.hidden_size),
        vocab_size=int(embeddings.num_embeddings if embeddings is not None else config.vocab_size),
        dtype=dtype or dtype_name(first.dtype),
        device=device or first.device.type,
        lora_targets=discover_roles(model),
        layer_module_pattern=layer_module_pattern(model),
        expert_targets=discover_expert_roles(model),
    )


def empty_model(
    source: str, *, trust_remote_code: bool = False, allow_network: bool = False
) -> transformers.PreTrainedModel:
    """Build the model from its config on the meta device: real structure, no weights, no memory."""
    folder = _local_folder(source, allow_network)
    config = load_model_config(source, folder, trust_remote_code)
    with building_models(), torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def inspect_model_folder(
    source: str | Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    allow_network: bool = False,
) -> tuple[transformers.PreTrainedModel, ModelFacts]:
    """The meta-device model and its facts, for callers that also want module names."""
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    model = empty_model(str(source), trust_remote_code=trust_remote_code, allow_network=allow_network)
    return model, model_facts(model, dtype=dtype_name(resolved_dtype), device=resolved_device)


def describe_model_folder(
    source: str | Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    allow_network: bool = False,
) -> ModelFacts:
    """The facts ``load_model`` would report with the same arguments, without loading weights.

    Only config.json is read; the model is built on the meta device, so this is fast even for
    large models. dtype and device are the ones load_model would choose.
    """
    _, facts = inspect_model_folder(
        source, dtype=dtype, device=device, trust_remote_code=trust_remote_code, allow_network=allow_network
    )
    return facts


# ---------------------------------------------------------------- loading


def load_model(
    source: str | Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    allow_network: bool = False,
    quantization: str = "none",
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a local folder (or, if allowed, a hub id).

    dtype: "auto" (bf16 on a CUDA GPU that supports it, else fp32), "fp32", "bf16", "fp16".
    device: "auto" (cuda, then mps, then cpu) or "cpu", "cuda", "mps".
    quantization: "none", or "nf4" / "int8" for a bitsandbytes-quantized base (memory_savers.py),
    loaded straight onto the device; ``dtype`` is then what it computes in and keeps unquantized.
    The model comes back in eval mode. The tokenizer pads on the right (for training) and, if it
    had no pad token, pads with eos/unk/bos without resizing the embeddings.
    """
    source = str(source)
    resolved_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, resolved_device)
    quantized = quantized_load_arguments(quantization, torch_dtype, resolved_device)
    folder = _local_folder(source, allow_network)
    config = load_model_config(source, folder, trust_remote_code)
    if folder is not None:
        require_model_files(folder, source)
    location = str(folder) if folder is not None else source
    local_only = folder is not None
    tokenizer = _load_tokenizer(location, source, local_only, trust_remote_code)
    try:
        with building_models():
            model = transformers.AutoModelForCausalLM.from_pretrained(
                location,
                config=config,
                dtype=torch_dtype,
                local_files_only=local_only,
                trust_remote_code=trust_remote_code,
                **quantized,
            )
    except pickle.UnpicklingError:
        raise UserError(
            f"The weights of model '{source}' are a pickle (pytorch_model.bin) that holds more than tensors, so "
            "they were not opened: a pickle can run any code when it is loaded",
            "Use the model's safetensors weights (model.safetensors), or, where you trust their source, load the "
            "model once with transformers and save it again with save_pretrained (which writes safetensors)",
        ) from None
    except (OSError, SafetensorError, RuntimeError) as exc:
        if "weights_only" in str(exc):  # torch's advice to load unsafely is never passed on
            raise UserError(f"The weights of model '{source}' could not be read safely",
                            "Use the model's safetensors weights (model.safetensors)") from None
        raise UserError(
            f"Could not load the weights of model '{source}': {exc}",
            "Check that the weight files are complete and match config.json, "
            "or copy them again from the model's original download",
        ) from exc
    if not quantized:
        model.to(resolved_device)
    elif resolved_device == "cpu":
        keep_trainable(model)
    model.eval()
    ensure_pad_token(tokenizer, source, vocab_rows=model.get_input_embeddings().num_embeddings)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, facts=model_facts(model), source=source)


# ---------------------------------------------------------------- LoRA


def attach_lora(
    model: nn.Module,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    roles: Any = None,
    layers: LayerSelection = None,
    adapter_name: str = "default",
) -> PeftModel:
    """Wrap ``model`` in a PeftModel with LoRA on ``roles`` in ``layers``; base weights frozen.

    ``roles`` and ``layers`` are as in ``plan_lora`` (None or "auto" = every role the model has;
    None = every layer); the returned model carries the plan as ``lora_plan`` (its ``summary()``
    says what is adapted). The targets are passed to peft as exact full names (modules, and the
    3-D expert weights of mixture-of-experts layers as target_parameters); peft matches list entries
    by name or dot-suffix, and a full name is a suffix only of itself, so nothing else is wrapped.
    gpt2-style Conv1D modules store their weight transposed, hence fan_in_fan_out=True for them.
    """
    if r < 1:
        raise UserError(f"LoRA rank r={r} is too small", "Use a rank of 1 or more (8 is a good start)")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"LoRA dropout {dropout} is out of range", "Use a dropout between 0 and 1 (0 is common)")
    plan = plan_lora(model, roles, layers, dropout=dropout)
    modules = dict(model.named_modules())
    fan_in_fan_out = any(isinstance(modules[name], Conv1D) for name in plan.modules)
    targets = {"target_parameters": plan.parameters} if plan.parameters else {}
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=plan.modules,
        fan_in_fan_out=fan_in_fan_out,
        task_type=TaskType.CAUSAL_LM,
        **targets,
    )
    with _quiet_peft(), building_models():
        wrapped = get_peft_model(model, config, adapter_name=adapter_name)
    wrapped.lora_plan = plan
    return wrapped


def load_adapter(model: nn.Module, adapter_dir: str | Path, *, adapter_name: str = "default") -> PeftModel:
    """``PeftModel.from_pretrained``: the saved LoRA adapter on ``model``, frozen, for inference.

    The folder is checked first (see adapter_files.check_adapter_fits): a pickle that holds more than
    tensors, weights that are not a mapping, or an adapter of another base model is a UserError."""
    check_adapter_fits(model, adapter_dir)
    with _quiet_peft(), building_models(), adapter_load_errors(adapter_dir):
        return PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=adapter_name)


def add_adapter(model: PeftModel, adapter_dir: str | Path, *, adapter_name: str) -> None:
    """Load one more saved adapter onto ``model`` under ``adapter_name`` (not made active)."""
    check_adapter_fits(model, adapter_dir)
    with _quiet_peft(), building_models(), adapter_load_errors(adapter_dir):
        model.load_adapter(str(adapter_dir), adapter_name=adapter_name)


@contextmanager
def _quiet_peft() -> Iterator[None]:
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers 5 method that is deprecated; the warning is not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield
