"""Model FLOPs of a LoRA training step, and the peak a device can do, for model FLOPs utilisation.

FLOPs per trained token (the count of issue 20): forward 2P (P: the base's matrix weights, the
output head included, embeddings' lookups not), backward 2P for the activations' gradients (the
base is frozen: no weight gradients), 6 P_lora for the adapter (forward 2, backward 4), and
attention: 4·L·d·S forward and twice that backward (no weights; S the padded sequence length).
MFU = achieved FLOP/s / the device's dense bf16 peak (GPUs: a table of the data-sheet figures;
CPUs: a large fp32 matmul measured on the same threads, so "1.0" is the machine's own best).
"""

from __future__ import annotations

import time

import torch
from torch import nn

# Dense bf16 tensor-core peaks from the vendors' data sheets (no sparsity), in TFLOP/s.
GPU_PEAK_TFLOPS = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0,
    "A100": 312.0, "A10G": 70.0, "A10": 125.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0,
    "RTX 6000 Ada": 364.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0, "T4": 65.0,
}


def matrix_parameters(model: nn.Module) -> int:
    """Weights that take part in a matrix product per token: every Linear (bitsandbytes' too, by
    their shape) and 3-D expert tensors; not embeddings (a lookup) nor norms."""
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            total += module.in_features * module.out_features
    return total


def flops_per_token(model: nn.Module, lora_parameters: int, sequence_length: float) -> float:
    config = model.config
    layers, hidden = config.num_hidden_layers, config.hidden_size
    base = matrix_parameters(model) - lora_parameters  # LoRA's A and B are Linear modules too
    attention = 4 * layers * hidden * sequence_length
    return 2 * base + 2 * base + 6 * lora_parameters + 3 * attention


def gpu_peak_flops(name: str | None = None) -> float | None:
    """The dense bf16 peak of this GPU (by its name), or None when the table does not know it."""
    name = name or torch.cuda.get_device_name()
    for key in sorted(GPU_PEAK_TFLOPS, key=len, reverse=True):
        if key in name:
            return GPU_PEAK_TFLOPS[key] * 1e12
    return None


def cpu_peak_flops(size: int = 2048, repeats: int = 5) -> float:
    """The best fp32 matmul rate of this process's torch threads, FLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best
