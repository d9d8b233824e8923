"""Where a model runs and in which dtype: "auto" picks the best the machine has, an explicit
choice must be available."""

from __future__ import annotations

import torch

from unlearn_studio.core.errors import UserError

DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> str:
    """"auto" picks cuda, then mps, then cpu; an explicit device must be available."""
    if device not in DEVICES:
        raise UserError(f"Unknown device '{device}'", f"Choose one of: {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise UserError(
            f"Device '{device}' is not available on this machine",
            "Choose device 'auto' or 'cpu'",
        )
    return device


def resolve_dtype(dtype: str = "auto", device: str = "cpu") -> torch.dtype:
    """"auto" is bf16 on a CUDA GPU that supports it, else fp32; or "fp32", "bf16", "fp16"."""
    if dtype == "auto":
        if device == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise UserError(f"Unknown dtype '{dtype}'", "Choose one of: auto, fp32, bf16, fp16")
    return DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    """"float32" for torch.float32."""
    return str(dtype).removeprefix("torch.")
