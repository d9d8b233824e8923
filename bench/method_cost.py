"""What one training step of a method costs, next to plain LoRA SFT on the same model, batch and length.

Shared by bench_step.py (time per token) and bench_memory.py (peak memory). Every method runs
through the real engine (``core.runner.execute``) on a bench model: the demo tokenizer with a
larger random Llama, so that the matrix work, not Python overhead, sets the step time. Each
method runs in its own process, so one method's memory never counts against the next.

The data are each method's own demo project (projects/<method>_demo.toml, else
projects/<method>.toml), with one LoRA set-up, batch size and max length forced on all of them.
Step time counts every token a step processes (all data roles): GradDiff reads forget AND retain
batches, so its time per token is comparable with SFT's, as the targets assume.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE = "sft"
METHODS = ("grad_ascent", "grad_diff", "npo", "rmu", "sku", "icu", "elm")
WARMUP_STEPS = 2


def project_for(method: str) -> Path:
    for name in (f"{method}_demo.toml", f"{method}.toml"):
        if (REPO / "projects" / name).is_file():
            return REPO / "projects" / name
    raise SystemExit(f"no project file for {method} in projects/")


def build_bench_model(folder: Path, hidden: int, layers: int) -> Path:
    """A random Llama with the demo tokenizer (GQA like the demo model), saved to ``folder``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from unlearn_studio.core.paths import demo_model_dir

    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64,
                         num_key_value_heads=max(1, hidden // 128), max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def bench_config(method: str, model_dir: Path, out_dir: Path, *, batch: int, length: int, steps: int):
    from unlearn_studio.core.config import RunConfig

    if method == BASELINE:
        # Plain SFT on the forget answers: the same data GradAscent reads, learned instead of unlearned.
        config = RunConfig.load(project_for("grad_ascent"))
        config.data = {"expert": config.data["forget"]}
        config.method.name, config.method.params = BASELINE, {}
    else:
        config = RunConfig.load(project_for(method))
    if method == "icu":
        # A random bench model reproduces none of the targets, so ICU would skip every step: keep
        # every target active and never stop early, to time the step itself.
        config.method.params.update(f1_threshold=0.0, bleu_threshold=0.0, ma_threshold=0.0, el_threshold=0.0,
                                    calibrate=False)
    for source in config.data.values():
        source.max_rows = 4 * batch  # enough for every step's batches; keeps ICU's and ELM's set-up short
    config.model.path, config.model.dtype = str(model_dir), "fp32"
    config.lora.enabled, config.lora.r, config.lora.alpha = True, 8, 16.0
    config.lora.roles = ["q", "k", "v", "o", "gate", "up", "down"]
    config.lora.layers = None
    t = config.training
    t.max_steps, t.epochs, t.batch_size, t.max_length, t.grad_accum = steps, None, batch, length, 1
    t.log_every, t.checkpoint_every = 1, steps + 1
    config.evaluation.suite = "none"
    config.output.dir = str(out_dir)
    config.validate()
    return config


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_one(method: str, model_dir: Path, *, batch: int, length: int, steps: int) -> dict:
    """Run ``method`` for ``steps`` steps in this process; its step time and memory."""
    import torch

    from unlearn_studio.core.events import StatusEvent, StepEvent
    from unlearn_studio.core.runner import execute

    with tempfile.TemporaryDirectory() as out:
        config = bench_config(method, model_dir, Path(out), batch=batch, length=length, steps=steps)
        seen: dict = {"tokens_per_s": [], "rss_at_start_mb": None}

        def listen(event) -> None:
            if isinstance(event, StatusEvent) and event.status == "running" and seen["rss_at_start_mb"] is None:
                seen["rss_at_start_mb"] = _rss_mb()  # model loaded and LoRA attached; training not begun
            if isinstance(event, StepEvent) and event.step > WARMUP_STEPS:
                seen["tokens_per_s"].append(event.tokens_per_s)

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        result = execute(config, listener=listen)
    if result.status != "finished":
        raise SystemExit(f"{method}: the run {result.status}: {result.error}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": method,
        "seconds_per_token": 1.0 / statistics.median(seen["tokens_per_s"]),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "peak_rss_mb": peak_rss,
        "training_rss_mb": peak_rss - (seen["rss_at_start_mb"] or 0.0),
    }


def measure_all(methods: list[str], *, hidden: int, layers: int, batch: int, length: int, steps: int) -> list[dict]:
    """Each method (and SFT first) in its own process; their measurements."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_bench_model(Path(folder) / "model", hidden, layers)
        for method in [BASELINE, *methods]:
            command = [sys.executable, __file__, "--one", method, "--model", str(model_dir), "--batch", str(batch),
                       "--length", str(length), "--steps", str(steps)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                print(f"{method}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  measured {method}", file=sys.stderr, flush=True)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    parser.add_argument("--hidden", type=int, default=512, help="bench model hidden size")
    parser.add_argument("--layers", type=int, default=8, help="bench model decoder layers")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=128, help="training.max_length")
    parser.add_argument("--steps", type=int, default=8, help=f"steps per method (the first {WARMUP_STEPS} not timed)")


def main_one() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(measure_one(args.one, args.model, batch=args.batch, length=args.length, steps=args.steps)))


if __name__ == "__main__":
    main_one()
