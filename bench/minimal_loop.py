"""The engine's training step against a minimal hand-written PyTorch + PEFT loop doing the same step.

    python bench/minimal_loop.py [--methods sft,grad_diff,npo] [--hidden 512 --layers 8 --batch 4 --length 128]
                                 [--steps 14] [--device cpu|cuda] [--dtype fp32|bf16] [--mixed-precision no|bf16]

The engine runs the method through ``core.run.runner.execute`` on the bench model of
method_cost.py (SFT on the forget persons' rows, GradDiff and NPO on their demo projects). The
minimal loop is transformers + PEFT + torch and nothing else: its own copy of the model with the
same LoRA (same seed), AdamW, linear schedule, gradient clipping, the loss written out
(cross-entropy on the answer tokens; NPO's reference with the adapter switched off) and one
backward per step. Every step of the run is paired: before the engine's step k, the rows its
streams will draw are read, and the minimal loop's step k trains on the same rows (collating them
itself); the two run back to back, in an order that alternates, so both see the same machine.
Reported per method: the median per-pair time ratio engine / minimal with a 95% bootstrap
interval, both loops' tokens/s, and model FLOPs utilisation (flops.py).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from flops import cpu_peak_flops, flops_per_token, gpu_peak_flops
from method_cost import BASELINE, bench_config, build_bench_model, padded_length, peek, plain_sft_class, use_long_rows
from peft import LoraConfig, get_peft_model
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoModelForCausalLM, get_scheduler, set_seed

from unlearn_studio.core.model.devices import DTYPES
from unlearn_studio.core.run import runner
from unlearn_studio.core.run.steps import StepLoop

WARMUP_STEPS = 2
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class MinimalLoop:
    """The hand-written loop: a model, an optimizer, a schedule and the method's loss."""

    def __init__(self, method: str, model_dir: Path, config, examples: dict[str, list[dict]], pad_id: int,
                 device: str, autocast: str):
        self.method, self.examples, self.pad_id, self.device = method, examples, pad_id, device
        self.autocast = None if autocast == "no" else DTYPES[autocast]
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[config.model.dtype]).to(device)
        set_seed(config.training.seed)
        lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=0.0, target_modules=PROJECTIONS,
                          task_type="CAUSAL_LM")
        self.model = get_peft_model(base, lora)
        self.model.train()
        o = config.optimizer
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas))
        self.scheduler = get_scheduler("linear", self.optimizer, num_warmup_steps=0,
                                       num_training_steps=config.training.max_steps)
        self.max_grad_norm = config.training.max_grad_norm
        self.beta = float(config.method.params.get("beta", 0.1))
        self.lora_parameters = sum(p.numel() for p in self.params)

    def batch(self, role: str, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = [self.examples[role][i] for i in indices]
        ids = pad_sequence([torch.tensor(r["input_ids"]) for r in rows], batch_first=True, padding_value=self.pad_id)
        mask = pad_sequence([torch.ones(len(r["input_ids"]), dtype=torch.long) for r in rows], batch_first=True)
        labels = pad_sequence([torch.tensor(r["labels"]) for r in rows], batch_first=True, padding_value=-100)
        return ids.to(self.device), mask.to(self.device), labels.to(self.device)

    def token_nll(self, ids, mask, labels) -> torch.Tensor:
        logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        return F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")

    def answer_ce(self, batch) -> torch.Tensor:
        nll = self.token_nll(*batch)
        return nll.sum() / (batch[2][:, 1:] != -100).sum().clamp(min=1)

    def loss(self, batches: dict[str, tuple]) -> torch.Tensor:
        if self.method == "sft":
            return self.answer_ce(batches["forget"])
        if self.method == "grad_diff":
            return -self.answer_ce(batches["forget"]) + self.answer_ce(batches["retain"])
        forget = batches["forget"]
        with torch.no_grad(), self.model.disable_adapter():
            reference = self.token_nll(*forget).sum(dim=1)
        theta = self.token_nll(*forget).sum(dim=1)
        npo = -(2.0 / self.beta) * F.logsigmoid(self.beta * (theta - reference)).mean()
        return npo + self.answer_ce(batches["retain"]) if "retain" in batches else npo

    def step(self, indices: dict[str, list[int]]) -> None:
        batches = {role: self.batch(role, rows) for role, rows in indices.items()}
        with torch.autocast(self.device, dtype=self.autocast, enabled=self.autocast is not None):
            loss = self.loss(batches)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(method: str, model_dir: Path, args) -> dict:
    """Engine and minimal loop, paired step by step, on ``method``'s rows."""
    name = f"{BASELINE}:grad_diff" if method == "sft" else method
    pairs: list[tuple[float, float, int, float]] = []  # engine s, minimal s, tokens, mean padded length
    state: dict = {}
    original = StepLoop.one_step

    def paired(self: StepLoop, number: int):
        if "minimal" not in state:
            examples = {role: item.examples for role, item in self.p.data.items()}
            pad = self.streams[next(iter(self.streams))].pad_token_id
            state["minimal"] = MinimalLoop(method, model_dir, self.p.config, examples, pad, args.device,
                                           self.acc.mixed_precision)
        minimal: MinimalLoop = state["minimal"]
        indices = peek(self)
        length = padded_length(self, indices)
        timings = {}
        for which in (("engine", "minimal") if number % 2 else ("minimal", "engine")):
            _sync(args.device)
            started = time.perf_counter()
            outcome = original(self, number) if which == "engine" else minimal.step(indices)
            _sync(args.device)
            timings[which] = time.perf_counter() - started
            if which == "engine":
                result = outcome
        if number > WARMUP_STEPS:
            pairs.append((timings["engine"], timings["minimal"], result[3], length))
        return result

    StepLoop.one_step = paired
    try:
        with tempfile.TemporaryDirectory() as out:
            config = bench_config(name, model_dir, Path(out), batch=args.batch, length=args.length, steps=args.steps,
                                  dtype=args.dtype)
            config.model.device = args.device
            config.training.mixed_precision = args.mixed_precision
            if args.long_rows:
                use_long_rows(config, Path(out))
            result = runner.execute(config, method=plain_sft_class() if method == "sft" else None)
    finally:
        StepLoop.one_step = original
    if result.status != "finished":
        raise SystemExit(f"{method}: the run {result.status}: {result.error}")
    minimal = state["minimal"]
    return {"method": method, "pairs": pairs, "lora_parameters": minimal.lora_parameters, "model": minimal.model}


def bootstrap_median(values: list[float], rounds: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="sft,grad_diff,npo")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=14, help=f"steps per method (the first {WARMUP_STEPS} not timed)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    parser.add_argument("--long-rows", action="store_true", help="every role reads real text rows that fill max length")
    args = parser.parse_args()
    peak = gpu_peak_flops() if args.device == "cuda" else cpu_peak_flops()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_bench_model(Path(folder) / "model", args.hidden, args.layers, args.dtype)
        for method in args.methods.split(","):
            rows.append(measure(method, model_dir, args))
            print(f"  measured {method}", file=sys.stderr, flush=True)
    where = (torch.cuda.get_device_name() if args.device == "cuda"
             else f"cpu, {torch.get_num_threads()} thread(s); peak = a 2048^3 fp32 matmul, {peak / 1e9:.1f} GFLOP/s")
    rows_are = "text rows filling max length" if args.long_rows else "each method's demo rows"
    print(f"engine vs minimal loop, paired per step (model hidden {args.hidden} x {args.layers} layers, batch "
          f"{args.batch}, max length {args.length}, {rows_are}, {args.dtype}, autocast {args.mixed_precision}; {where})")
    print(f"{'method':<10} {'engine ms':>10} {'minimal ms':>11} {'ratio':>7} {'95% interval':>14} "
          f"{'tok/s engine':>13} {'tok/s minimal':>14} {'MFU engine':>11} {'MFU minimal':>12}")
    for r in rows:
        engine = [p[0] for p in r["pairs"]]
        minimal = [p[1] for p in r["pairs"]]
        ratios = [e / m for e, m, *_ in r["pairs"]]
        low, high = bootstrap_median(ratios)
        tokens = statistics.median(p[2] for p in r["pairs"])
        length = statistics.median(p[3] for p in r["pairs"])
        per_token = flops_per_token(r["model"], r["lora_parameters"], length)
        e_s, m_s = statistics.median(engine), statistics.median(minimal)
        mfu = (f"{tokens * per_token / e_s / peak:>11.3f} {tokens * per_token / m_s / peak:>12.3f}" if peak
               else f"{'':>11} {'':>12}")
        print(f"{r['method']:<10} {e_s * 1e3:>10.1f} {m_s * 1e3:>11.1f} {statistics.median(ratios):>6.3f}x "
              f"{f'{low:.3f}-{high:.3f}':>14} {tokens / e_s:>13.0f} {tokens / m_s:>14.0f} {mfu}")


if __name__ == "__main__":
    main()
