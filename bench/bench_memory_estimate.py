"""The memory estimate (core/run/memory_estimate.py) against the measured peak, on the CPU.

    python bench/bench_memory_estimate.py [--sizes 256x4,512x8,1024x8] [--variants plain,checkpointing,nf4]

For each bench model size (hidden x layers: a random Llama with the demo tokenizer, fp32) and each
variant (plain; gradient checkpointing; a 4-bit NF4 base, where bitsandbytes is installed), one
LoRA SFT run of a few steps through the engine, each in a process of its own. Measured: the
process's resident and anonymous memory above what it held before the model was loaded (libraries
imported and a warm-up run of the demo model done first), sampled every millisecond, with
MALLOC_MMAP_THRESHOLD_ set so that the resident size follows the live tensors (method_cost.py);
apart for the loading and set-up ("load") and for the training steps ("steps"). Weights read
from safetensors are file-backed pages: for a plain base they are the weights the steps use, for a
quantized base they are a stale cache of the full-precision file, so its need is the anonymous part. Estimated: the
estimate's training total and, for a quantized base, its loading peak. The ratio is measured /
estimated; the estimate's headroom (HEADROOM) is meant to cover what it leaves out.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from method_cost import BASELINE, CHILD_ENV, bench_config, build_bench_model, plain_sft_class

from unlearn_studio.core.paths import demo_data_dir

REPO = Path(__file__).resolve().parent.parent
STEPS = 3


def long_rows(path: Path, length: int, rows: int) -> Path:
    """Raw-text rows of the demo's general text, each longer than ``length`` tokens, so that every
    batch is ``batch x length`` tokens as the estimate assumes (the demo's own rows are under 100)."""
    texts = [json.loads(line)["text"] for line in (demo_data_dir() / "general.jsonl").read_text().splitlines()]
    words_per_row = length * 2  # a demo token is a word or less
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            words: list[str] = []
            j = i
            while len(words) < words_per_row:
                words += texts[j % len(texts)].split()
                j += 7
            out.write(json.dumps({"text": " ".join(words)}) + "\n")
    return path


def configure(model_dir: Path, out: Path, variant: str, batch: int, length: int):
    config = bench_config(f"{BASELINE}:elm", model_dir, out, batch=batch, length=length, steps=STEPS)
    source = config.data["forget"]
    source.path, source.template, source.format = str(long_rows(out / "long.jsonl", length, 4 * batch)), "raw", "auto"
    config.training.gradient_checkpointing = variant == "checkpointing"
    config.model.quantization = "nf4" if variant == "nf4" else "none"
    config.model.device = "cpu"
    return config


def memory_mb() -> tuple[float, float]:
    """(resident, of it anonymous) MB of this process. Weights read from a safetensors file stay
    file-backed pages: needed while the weights are used, reclaimable once a quantized copy
    replaced them."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "RssAnon:")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["RssAnon"]


class Sampler:
    """The peaks of resident and anonymous memory, read every millisecond on a thread of its own
    (CHILD_ENV makes them follow the live tensors)."""

    def __init__(self):
        self.peak = [0.0, 0.0]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.001):
            now = memory_mb()
            self.peak = [max(p, n) for p, n in zip(self.peak, now, strict=True)]

    def take(self) -> list[float]:
        """The peaks so far, and start again."""
        peak, self.peak = self.peak, [0.0, 0.0]
        return peak

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _trim() -> None:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def child(model_dir: Path, variant: str, batch: int, length: int) -> dict:
    """One run in this process; its measured and estimated memory (MB). torch and the engine are
    imported here: the parent process, which only starts children, never needs them."""
    import torch

    from unlearn_studio.core.paths import demo_model_dir
    from unlearn_studio.core.run import runner
    from unlearn_studio.core.run.memory_estimate import estimate_memory
    from unlearn_studio.core.run.steps import StepLoop

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:  # warm-up: every library and lazy import loaded
        warm = configure(demo_model_dir(), Path(out), "nf4" if variant == "nf4" else "plain", 2, 32)
        runner.execute(warm, method=plain_sft_class())
    _trim()
    time.sleep(0.2)
    base = memory_mb()
    sampler = Sampler()
    sampler.start()
    load_peak: list[float] = []
    original = StepLoop.one_step

    def step(self, number):
        if number == 1:
            load_peak.extend(sampler.take())
        return original(self, number)

    StepLoop.one_step = step
    try:
        with tempfile.TemporaryDirectory() as out:
            config = configure(model_dir, Path(out), variant, batch, length)
            estimate = estimate_memory(config)
            result = runner.execute(config, method=plain_sft_class())
    finally:
        StepLoop.one_step = original
        steps_peak = sampler.take()
        sampler.stop()
    if result.status != "finished":
        raise SystemExit(f"the run {result.status}: {result.error}")
    mb = 2**20
    return {"variant": variant, "base_mb": base[0], "load_mb": load_peak[0] - base[0],
            "load_anon_mb": load_peak[1] - base[1], "steps_mb": steps_peak[0] - base[0],
            "steps_anon_mb": steps_peak[1] - base[1],
            "estimate_training_mb": estimate.training / mb, "estimate_loading_mb": estimate.loading / mb,
            "estimate_total_mb": estimate.total / mb, "estimate_parts": [(w, s / mb) for w, s in estimate.parts()]}


def measure(size: str, variant: str, model_dir: Path, batch: int, length: int) -> dict | None:
    command = [sys.executable, __file__, "--child", str(model_dir), variant, str(batch), str(length)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO / "bench", env=CHILD_ENV, check=False)
    if done.returncode != 0:
        print(f"{size} {variant}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"size": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x4,512x8,1024x8", help="hidden x layers, comma-separated")
    parser.add_argument("--variants", default="plain,checkpointing,nf4")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()
    results = []
    for size in args.sizes.split(","):
        hidden, layers = (int(x) for x in size.split("x"))
        with tempfile.TemporaryDirectory() as folder:
            model_dir = build_bench_model(Path(folder) / "model", hidden, layers)
            for variant in args.variants.split(","):
                measured = measure(size, variant, model_dir, args.batch, args.length)
                if measured is not None:
                    results.append(measured)
                    print(f"  measured {size} {variant}", file=sys.stderr, flush=True)
    print(f"LoRA SFT (r 8 on every projection), batch {args.batch} x {args.length} tokens, fp32 on the CPU, "
          f"{STEPS} steps; MB above the process's memory before loading. 'needed': resident memory, except for a "
          "quantized base: anonymous memory (the full-precision file pages read while it loaded stay cached, "
          "reclaimable)")
    print(f"{'model':<9} {'variant':<14} {'est. train':>10} {'steps':>7} {'anon':>7} {'needed':>7} {'ratio':>6} "
          f"{'est. load':>10} {'load':>7} {'ratio':>6}")
    for r in results:
        load_estimate = r["estimate_loading_mb"] or r["estimate_parts"][0][1]  # weights alone when not quantized
        needed = r["steps_anon_mb"] if r["variant"] == "nf4" else r["steps_mb"]
        print(f"{r['size']:<9} {r['variant']:<14} {r['estimate_training_mb']:>10.0f} {r['steps_mb']:>7.0f} "
              f"{r['steps_anon_mb']:>7.0f} {needed:>7.0f} {needed / r['estimate_training_mb']:>5.2f}x "
              f"{load_estimate:>10.0f} {r['load_mb']:>7.0f} {r['load_mb'] / load_estimate:>5.2f}x")

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
    else:
        main()
