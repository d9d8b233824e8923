"""What one training step of a method costs, next to plain LoRA SFT on the same model, batch and length.

Shared by bench_step.py (time per token) and bench_memory.py (peak memory). Every method runs
through the real engine (``core.runner.execute``) on a bench model: the demo tokenizer with a
larger random Llama, so that the matrix work, not Python overhead, sets the step time. Each
method runs in its own process, so one method's memory never counts against the next.

The data are each method's own demo project (projects/<method>_demo.toml, else
projects/<method>.toml), with one LoRA set-up, batch size and max length forced on all of them.
The baseline is SFT on the SAME sequences as the method's first data role (SKU's harmful
answers, ICU's records, ELM's saga passages, the forget persons' QA for the baselines): memory
and step time grow with the real length of the rows, so a method is compared with SFT on rows
of its own length, not with SFT on short QA rows. Time per token counts the tokens the adapter
trains on (every forward pass with gradients: SKU's mismatched answers and ICU's neighbours
too); frozen passes are the method's overhead.
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
import threading
import time
from pathlib import Path

from flops import flops_per_token

REPO = Path(__file__).resolve().parent.parent
BASELINE = "sft"
METHODS = ("grad_ascent", "grad_diff", "npo", "rmu", "sku", "icu", "elm")
WARMUP_STEPS = 2
# glibc serves large blocks from its heap once a freed mapping has raised its mmap threshold, and
# keeps them: the resident size then tracks the allocator's history, not the live tensors. A
# fixed threshold maps every block over 64 KiB on its own and unmaps it when freed, so the peak
# resident memory follows what a run really holds (the same setting for every method).
CHILD_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}


def project_for(method: str) -> Path:
    for name in (f"{method}_demo.toml", f"{method}.toml"):
        if (REPO / "projects" / name).is_file():
            return REPO / "projects" / name
    raise SystemExit(f"no project file for {method} in projects/")


def build_bench_model(folder: Path, hidden: int, layers: int, dtype: str = "fp32") -> Path:
    """A random Llama with the demo tokenizer (GQA like the demo model), saved to ``folder`` in
    ``dtype`` (so that each run loads it without converting)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from unlearn_studio.core.model.devices import DTYPES
    from unlearn_studio.core.paths import demo_model_dir

    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64,
                         num_key_value_heads=max(1, hidden // 128), max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).to(DTYPES[dtype]).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def long_rows(path: Path, length: int, rows: int) -> Path:
    """Raw-text rows of the demo's general text, each longer than ``length`` tokens, so that every
    batch is ``batch x length`` tokens of real text (the demo's own rows are under 100 tokens)."""
    from unlearn_studio.core.paths import demo_data_dir

    texts = [json.loads(line)["text"] for line in (demo_data_dir() / "general.jsonl").read_text().splitlines()]
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            words: list[str] = []
            j = i
            while len(words) < 2 * length:  # a demo token is a word or less
                words += texts[j % len(texts)].split()
                j += 7
            out.write(json.dumps({"text": " ".join(words)}) + "\n")
    return path


def use_long_rows(config, folder: Path) -> None:
    """Every data role of ``config`` reads long rows (``long_rows``) as raw text."""
    t = config.training
    path = long_rows(folder / "long_rows.jsonl", t.max_length, 4 * t.batch_size)
    for source in config.data.values():
        source.path, source.template, source.format, source.columns = str(path), "raw", "auto", {}


def peek(loop) -> dict[str, list[int]]:
    """The rows each of a StepLoop's streams draws next (this process's share), without moving it."""
    drawn = {}
    for role, stream in loop.streams.items():
        state = stream.state()
        chosen = stream.next_indices()
        stream.load_state(state)
        drawn[role] = chosen[stream.rank :: stream.world] or [chosen[stream.rank % len(chosen)]]
    return drawn


def padded_length(loop, drawn: dict[str, list[int]]) -> float:
    """The mean over roles of the drawn batches' padded length (the attention's sequence length)."""
    widths = [max(len(loop.streams[role].examples[i]["input_ids"]) for i in rows) for role, rows in drawn.items()]
    return sum(widths) / len(widths)


BASELINE_METHOD = "bench_sft"


def plain_sft_class():
    """SFT (core/methods/sft.py) reading its rows from the forget role, which takes QA rows and
    text alike, so that it can train on any method's first data role: one pass, answer-token CE."""
    from unlearn_studio.core.methods.base import DataRoles
    from unlearn_studio.core.methods.sft import SFT

    class PlainSFT(SFT):
        name = BASELINE_METHOD
        roles = DataRoles(required=("forget",))

        def loss_terms(self, context, batch):
            return super().loss_terms(context, {"expert": batch["forget"]})

    return PlainSFT


def baseline_data(method: str):
    """(name, data source) of the method's first data role: what its SFT baseline trains on."""
    from unlearn_studio.core.methods.registry import get_method
    from unlearn_studio.core.project.config import RunConfig

    config = RunConfig.load(project_for(method))
    role = get_method(config.method.name).roles.required[0]
    source = config.data[role]
    return f"{BASELINE}:{Path(source.path.split(':')[-1]).stem}", source, config.base_dir


def bench_config(method: str, model_dir: Path, out_dir: Path, *, batch: int, length: int, steps: int,
                 dtype: str = "fp32"):
    """``method`` is a method name, or "sft:<method>" for SFT on that method's first data role."""
    from unlearn_studio.core.project.config import RunConfig

    if method.startswith(f"{BASELINE}:"):
        _, source, base_dir = baseline_data(method.split(":", 1)[1])
        config = RunConfig.load(project_for("grad_ascent"))
        config.data, config.base_dir = {"forget": source}, base_dir
        config.method.name, config.method.params = BASELINE_METHOD, {}
    else:
        config = RunConfig.load(project_for(method))
    if method == "icu":
        # A random bench model reproduces none of the targets, so ICU would skip every step: keep
        # every target active and never stop early, to time the step itself.
        config.method.params.update(f1_threshold=0.0, bleu_threshold=0.0, ma_threshold=0.0, el_threshold=0.0,
                                    calibrate=False)
    for source in config.data.values():
        source.max_rows = 4 * batch  # enough for every step's batches; keeps ICU's and ELM's set-up short
    config.model.path, config.model.dtype = str(model_dir), dtype
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


def measure_one(method: str, model_dir: Path, *, batch: int, length: int, steps: int, dtype: str = "fp32",
                long: bool = False) -> dict:
    """Run ``method`` for ``steps`` steps in this process; its step time and memory, with the
    set-up (model, LoRA, the method's ``prepare``) apart from the training steps."""
    import torch

    from unlearn_studio.core.run import runner
    from unlearn_studio.core.run.steps import StepLoop

    cuda = torch.cuda.is_available()
    seen: dict = {"seconds": [], "tokens": [], "lengths": [], "setup_gpu_mb": None, "setup_rss_mb": None,
                  "start_gpu_mb": None, "start_rss_mb": None}
    one_step = StepLoop.one_step

    sampler = ResidentSampler()

    def measured_step(self, number):
        if number == 1:  # set-up done: its peak and what it holds, then the steps' own peak
            seen["setup_rss_mb"], seen["start_rss_mb"] = _peak_rss_mb(), _rss_mb()
            sampler.start()
            if cuda:
                torch.cuda.synchronize()
                seen["setup_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
                seen["start_gpu_mb"] = torch.cuda.memory_allocated() / 2**20
                torch.cuda.reset_peak_memory_stats()
            seen["model"] = self.p.model
            seen["lora_parameters"] = sum(param.numel() for param in self.trainable)
        seen["lengths"].append(padded_length(self, peek(self)))
        started = time.perf_counter()
        sampler.active = True
        outcome = one_step(self, number)
        if cuda:
            torch.cuda.synchronize()
        sampler.active = False
        if number > WARMUP_STEPS:
            seen["seconds"].append(time.perf_counter() - started)
            seen["tokens"].append(outcome[3])
        return outcome

    StepLoop.one_step = measured_step
    try:
        with tempfile.TemporaryDirectory() as out:
            config = bench_config(method, model_dir, Path(out), batch=batch, length=length, steps=steps, dtype=dtype)
            if long:
                use_long_rows(config, Path(out))
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            chosen = plain_sft_class() if config.method.name == BASELINE_METHOD else None
            result = runner.execute(config, method=chosen)
    finally:
        sampler.stop()
        StepLoop.one_step = one_step
    if result.status != "finished":
        raise SystemExit(f"{method}: the run {result.status}: {result.error}")
    return {
        "method": method,
        "seconds_per_step": statistics.median(seen["seconds"]),
        # Per step, then the median: rows differ in length from step to step, and a shared
        # machine slows a step now and then.
        "seconds_per_token": statistics.median(s / max(1, t) for s, t in zip(seen["seconds"], seen["tokens"])),
        "tokens_per_step": statistics.median(seen["tokens"]),
        # Model FLOPs per trained token (flops.py), at the steps' median padded length.
        "flops_per_token": flops_per_token(seen["model"], seen["lora_parameters"], statistics.median(seen["lengths"])),
        "setup_gpu_mb": seen["setup_gpu_mb"],
        "step_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "start_gpu_mb": seen["start_gpu_mb"],
        "setup_rss_mb": seen["setup_rss_mb"],
        "step_rss_mb": sampler.peak_mb,
        "start_rss_mb": seen["start_rss_mb"],
        "peak_rss_mb": _peak_rss_mb(),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }


class ResidentSampler:
    """The largest resident size seen while ``active``, read every millisecond on its own thread:
    on a CPU, the training steps' peak apart from the set-up's and from what a method does
    between steps (ICU's refinement); ``CHILD_ENV`` makes the resident size follow the live tensors."""

    def __init__(self):
        self.peak_mb = 0.0
        self.active = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.001):
            if self.active:
                self.peak_mb = max(self.peak_mb, _rss_mb())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._done.set()
            self._thread.join()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure_apart(name: str, model_dir: Path, **settings) -> dict | None:
    """One run in a process of its own: nothing another run left behind counts against it."""
    command = [sys.executable, __file__, "--one", name, "--model", str(model_dir),
               *(f"--{key}={value}" for key, value in settings.items())]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=CHILD_ENV, check=False)
    if done.returncode != 0:
        print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_here(name: str, model_dir: Path, **settings) -> dict | None:
    """One run in this process, for a GPU: CUDA's counters are per run, and the allocations the
    last run left are freed first (and would show in "start" if they were not)."""
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()
    try:
        return measure_one(name, model_dir, **settings)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the other runs still get measured
        print(f"{name}: failed: {exc}", file=sys.stderr)
        return None


def measure_all(methods: list[str], *, hidden: int, layers: int, batch: int, length: int, steps: int,
                dtype: str = "fp32", in_process: bool = False, long: bool = False,
                save: str | None = None) -> list[dict]:
    """Each method, and SFT on each method's data before it, each in its own process (or, with
    ``in_process``, one after the other in this one); their measurements. A method's result
    names its baseline (``"baseline"``). With ``save``, the measurements so far are written there
    after each run, so that a run cut short by a time limit keeps what it measured."""
    results, baselines = [], {}
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_bench_model(Path(folder) / "model", hidden, layers, dtype)
        for method in methods:
            baseline = baseline_data(method)[0]
            runs = ([] if baseline in baselines else [f"{BASELINE}:{method}"]) + [method]
            for name in runs:
                measured = (_measure_here if in_process else _measure_apart)(
                    name, model_dir, batch=batch, length=length, steps=steps, dtype=dtype, long=long)
                if measured is None:
                    continue
                if name == method:
                    results.append(measured | {"baseline": baselines.get(baseline)})
                else:
                    baselines[baseline] = measured | {"method": baseline}
                print(f"  measured {name}", file=sys.stderr, flush=True)
                if save:
                    Path(save).write_text(json.dumps([*baselines.values(), *results], indent=1), encoding="utf-8")
    return [*baselines.values(), *results]


def ratio_rows(results: list[dict], key: str) -> list[tuple[dict, float | None]]:
    """(result, its ``key`` over its baseline's) for every result; baselines get None."""
    return [(r, r[key] / r["baseline"][key] if r.get("baseline") else None) for r in results]


def measure_or_load(args) -> list[dict]:
    """The measurements: loaded from ``--load``, else measured (and written to ``--save``)."""
    if args.load:
        return json.loads(Path(args.load).read_text(encoding="utf-8"))
    results = measure_all(args.methods.split(","), hidden=args.hidden, layers=args.layers, batch=args.batch,
                          length=args.length, steps=args.steps, dtype=args.dtype, in_process=args.in_process,
                          long=args.long_rows, save=args.save)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    parser.add_argument("--hidden", type=int, default=512, help="bench model hidden size")
    parser.add_argument("--layers", type=int, default=8, help="bench model decoder layers")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=128, help="training.max_length")
    parser.add_argument("--steps", type=int, default=12, help=f"steps per method (the first {WARMUP_STEPS} not timed)")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="model.dtype of every run")
    parser.add_argument("--in-process", action="store_true",
                        help="run everything in this process (a GPU's counters are per run; saves start-up time)")
    parser.add_argument("--long-rows", action="store_true",
                        help="every role reads real text rows that fill max length (SFT's and the methods' alike)")
    parser.add_argument("--save", help="also write the measurements to this JSON file")
    parser.add_argument("--load", help="print the measurements saved in this JSON file instead of measuring")


def main_one() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--long", default="False")
    args = parser.parse_args()
    print(json.dumps(measure_one(args.one, args.model, batch=args.batch, length=args.length, steps=args.steps,
                                 dtype=args.dtype, long=args.long == "True")))


if __name__ == "__main__":
    main_one()
