"""What lets a bigger model train in the memory there is: a quantized base under the LoRA adapter
(QLoRA: 4-bit NF4 with double quantization, or 8-bit LLM.int8, through bitsandbytes) and
gradient checkpointing (activations recomputed in the backward pass instead of kept).

Only the base's linear projections are quantized (bitsandbytes replaces ``nn.Linear``; the
embeddings, norms, the output head and mixture-of-experts' 3-D expert weights stay in the
model's dtype). The adapter itself stays in fp32, so it saves, combines (Ext-Sub) and loads on
the unquantized base like any other; the adapter switched off is the quantized base, which is
the original model the methods compare with. bitsandbytes runs on CUDA GPUs and, slowly (a
pure-torch path), on the CPU.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from torch import nn
from transformers import BitsAndBytesConfig

from unlearn_studio.core.errors import UserError

QUANTIZATIONS = ("none", "nf4", "int8")
QUANTIZED_DEVICES = ("cuda", "cpu")
INSTALL_FIX = "Install bitsandbytes (pip install 'unlearn-studio[quantization]'), or set model.quantization = \"none\"."
# Bytes a quantized weight element takes, its scales included: NF4 packs two values in a byte, with
# an absmax per 64 values stored in 8 bits (double quantization) plus an fp32 constant per 256 of
# those; LLM.int8 keeps one byte per value and an fp32 scale per output row (counted apart).
BYTES_PER_WEIGHT = {"nf4": 0.5 + 1 / 64 + 4 / (64 * 256), "int8": 1.0}
NAMES = {"none": "not quantized", "nf4": "4-bit NF4 (bitsandbytes, double quantization)",
         "int8": "8-bit LLM.int8 (bitsandbytes)"}


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def quantization_problem(kind: str, device: str) -> str | None:
    """Why ``kind`` cannot be used on ``device`` here (None when it can)."""
    if kind == "none":
        return None
    if kind not in QUANTIZATIONS:
        return f"model.quantization = \"{kind}\" is not one of {', '.join(QUANTIZATIONS)}"
    if not bitsandbytes_installed():
        return f"model.quantization = \"{kind}\" needs bitsandbytes, which is not installed"
    if device not in QUANTIZED_DEVICES:
        return f"bitsandbytes quantization runs on a CUDA GPU or the CPU, not on {device}"
    return None


def check_quantization(kind: str, device: str) -> None:
    """UserError when ``kind`` cannot be used on ``device``."""
    problem = quantization_problem(kind, device)
    if problem is None:
        return
    fix = INSTALL_FIX if "not installed" in problem else "Set model.quantization = \"none\", or model.device = \"cuda\"."
    raise UserError(problem, fix)


def quantization_config(kind: str, compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """bitsandbytes' settings for ``kind``: QLoRA's NF4 with double quantization, computing in
    ``compute_dtype`` (the dtype the run trains in), or LLM.int8."""
    if kind == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    if kind == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"no quantization config for {kind!r}")


def quantized_load_arguments(kind: str, compute_dtype: torch.dtype, device: str) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments that load the base quantized, straight onto ``device``
    (a quantized model cannot be moved afterwards); empty for "none"."""
    if kind == "none":
        return {}
    check_quantization(kind, device)
    # On a GPU: the current device, which accelerate sets to each process's own GPU.
    place = torch.cuda.current_device() if device == "cuda" else "cpu"
    return {"quantization_config": quantization_config(kind, compute_dtype), "device_map": {"": place}}


def keep_trainable(model: nn.Module) -> None:
    """Stop bitsandbytes (0.50) from repacking 4-bit weights for inference on a CPU with AVX512-BF16.
    It does so at the first forward in eval mode without gradients (an evaluation, a method's
    generation), and the repacked layers then pass no gradient: every later training step left
    all 16 LoRA weights of a test model without one (and layers whose outputs are not a multiple
    of 32 fail to repack at all). The flag it checks is set off on every 4-bit layer."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def is_quantized(model: nn.Module) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_quantized", False))


def quantized_weight_bytes(model: nn.Module, kind: str, dtype_bytes: int) -> tuple[int, int]:
    """(bytes of every weight, of them the quantized ones) for ``model`` (a meta-device build will
    do) loaded with ``kind`` in a dtype of ``dtype_bytes`` per element: the linear projections are
    quantized, the output head, embeddings, norms and expert tensors are not."""
    output = model.get_output_embeddings()
    linear_ids = {id(module.weight) for module in model.modules()
                  if isinstance(module, nn.Linear) and module is not output}
    total = quantized = 0
    seen: set[int] = set()
    for param in model.parameters():  # tied weights once
        if id(param) in seen:
            continue
        seen.add(id(param))
        if kind != "none" and id(param) in linear_ids:
            size = param.numel() * BYTES_PER_WEIGHT[kind]
            if kind == "int8":
                size += param.shape[0] * 4  # a scale per output row
            quantized += int(size)
            total += int(size)
        else:
            total += param.numel() * dtype_bytes
    return total, quantized


def enable_gradient_checkpointing(model: nn.Module, source: str) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping them: the
    activation memory of a step falls to one layer's plus each layer's input, for about a third
    more compute. Non-reentrant checkpointing, which needs no gradient on the inputs (the base's
    embeddings are frozen under LoRA)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise UserError(f"The model '{source}' ({type(model).__name__}) does not support gradient checkpointing",
                        "Set training.gradient_checkpointing = false, and lower the batch size or max length "
                        "to fit the memory instead.")
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers 5.2x's name
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
