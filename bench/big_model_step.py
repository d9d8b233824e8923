"""Does a training step of a 7-8B-shaped model with a quantized base fit in a 24 GB GPU, and how fast is it?

    python bench/big_model_step.py [--hidden 4096 --layers 32 --intermediate 14336 --heads 32 --kv-heads 8]
                                   [--quantization nf4] [--batch 8 --length 512] [--steps 6] [--device cuda]
                                   [--checkpointing no,yes] [--budget-gb 24]

The model is Llama-3-8B-shaped (random bf16 weights, built on the device and saved once; the demo
tokenizer, so its embeddings are small: 7.0 B parameters in the decoder layers). Each setting is a
LoRA SFT run through the engine (``core.run.runner.execute``, r 8 on every projection) on real text
rows that fill max length (method_cost.use_long_rows), loading the base with ``model.quantization``.
Reported per setting: the peak CUDA memory allocated and reserved during the steps (the set-up's
too), the engine's memory estimate, whether the peak fits the budget, and the median trained tokens
per second after the first step. ``--device cpu`` with tiny shapes tries the script without a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from method_cost import BASELINE, bench_config, plain_sft_class, use_long_rows
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from unlearn_studio.core.paths import demo_model_dir
from unlearn_studio.core.run import runner
from unlearn_studio.core.run.memory_estimate import estimate_memory
from unlearn_studio.core.run.steps import StepLoop

WARMUP_STEPS = 1
GB = 2**30


def build(folder: Path, args) -> int:
    """The random bf16 model and the demo tokenizer in ``folder`` (built on the device: seconds, not
    minutes); its parameter count."""
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.kv_heads, max_position_embeddings=max(2048, args.length),
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    n_params = sum(param.numel() for param in model.parameters())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return n_params


def measure(model_dir: Path, checkpointing: bool, args) -> dict:
    cuda = args.device == "cuda"
    seen: dict = {"seconds": [], "tokens": []}
    original = StepLoop.one_step

    def timed(self, number):
        if number == 1 and cuda:
            torch.cuda.synchronize()
            seen["setup_allocated"] = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        outcome = original(self, number)
        if cuda:
            torch.cuda.synchronize()
        if number > WARMUP_STEPS:
            seen["seconds"].append(time.perf_counter() - started)
            seen["tokens"].append(outcome[3])
        return outcome

    StepLoop.one_step = timed
    try:
        with tempfile.TemporaryDirectory() as out:
            config = bench_config(f"{BASELINE}:grad_ascent", model_dir, Path(out), batch=args.batch,
                                  length=args.length, steps=args.steps + WARMUP_STEPS, dtype="bf16")
            use_long_rows(config, Path(out))
            config.model.device, config.model.quantization = args.device, args.quantization
            config.training.gradient_checkpointing = checkpointing
            estimate = estimate_memory(config)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            result = runner.execute(config, method=plain_sft_class())
    finally:
        StepLoop.one_step = original
    if result.status != "finished":
        return {"checkpointing": checkpointing, "error": f"{result.status}: {result.error}"}
    return {
        "checkpointing": checkpointing,
        "allocated": torch.cuda.max_memory_allocated() if cuda else None,
        "reserved": torch.cuda.max_memory_reserved() if cuda else None,
        "setup_allocated": seen.get("setup_allocated"),
        "estimate": estimate.total,
        "tokens_per_s": statistics.median(t / s for s, t in zip(seen["seconds"], seen["tokens"], strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--intermediate", type=int, default=14336)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--quantization", default="nf4", choices=("nf4", "int8", "none"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5, help=f"timed steps (after {WARMUP_STEPS} warm-up)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--checkpointing", default="no,yes", help="gradient checkpointing settings to run")
    parser.add_argument("--budget-gb", type=float, default=24.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / "model"
        n_params = build(model_dir, args)
        for setting in args.checkpointing.split(","):
            rows.append(measure(model_dir, setting == "yes", args))
            print(f"  measured checkpointing {setting}", file=sys.stderr, flush=True)
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    shape = f"hidden {args.hidden} x {args.layers} layers, intermediate {args.intermediate}, {args.kv_heads} kv heads"
    print(f"LoRA SFT step on a {args.quantization} base ({shape}, {n_params:,} parameters), "
          f"batch {args.batch} x {args.length} tokens of text, bf16; {where}; budget {args.budget_gb:g} GB")
    print(f"{'checkpointing':<14} {'peak alloc GB':>14} {'reserved GB':>12} {'set-up GB':>10} {'estimate GB':>12} "
          f"{'fits':>5} {'tok/s':>8}")
    for r in rows:
        if "error" in r:
            print(f"{'yes' if r['checkpointing'] else 'no':<14} {r['error']}")
            continue
        peak = r["reserved"] if r["reserved"] is not None else None
        fits = "" if peak is None else ("yes" if peak <= args.budget_gb * GB else "no")
        gb = (lambda v: f"{v / GB:.2f}" if v is not None else "-")
        print(f"{'yes' if r['checkpointing'] else 'no':<14} {gb(r['allocated']):>14} {gb(r['reserved']):>12} "
              f"{gb(r['setup_allocated']):>10} {r['estimate'] / GB:>12.2f} {fits:>5} {r['tokens_per_s']:>8.0f}")


if __name__ == "__main__":
    main()
