"""The run's default intra-op thread count against 1 thread and every core, quiet and under load.

    python bench/bench_threads.py [--rounds 8] [--loads 0,1,2] [--hidden 512 --layers 8 --batch 4 --length 128]

The step is the engine's own LoRA SFT step (core.run.runner.execute on the bench model of
method_cost.py, the persons' QA rows). Contenders are paired step by step in one process: each
round runs one step with every thread count, in an order that rotates from round to round, so a
change in the machine's load reaches every contender alike. Each load level is a run of its own:
"load N" starts N busy processes (single-threaded matrix products, what another training job on
the machine does) before the run and stops them after it. The defaults are those of
core/run/threads.py with OMP_NUM_THREADS unset: the command line's (every physical core) and the
app's (one core left to its window), both less the cores other processes keep busy when the run
starts. How busy the machine was comes from /proc/stat over each
run, split into this benchmark's steps, its load processes and everything else.

This script sets the thread counts itself: run it WITHOUT OMP_NUM_THREADS in the environment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from method_cost import BASELINE, bench_config, build_bench_model, plain_sft_class

from unlearn_studio.core.run import runner
from unlearn_studio.core.run.steps import StepLoop
from unlearn_studio.core.run.threads import choose_threads, usable_physical_cores

LOAD = ("import numpy as np\n"
        "a = np.random.default_rng(0).random((384, 384))\n"
        "while True:\n    a = (a @ a) / 384.0\n")
WARMUP_STEPS = 2


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def process_ticks(pid: int | str = "self") -> int:
    """User + system clock ticks a process has used (its threads included)."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def start_load(n: int) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-c", LOAD], env=env) for _ in range(n)]


def stop_load(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def contenders() -> list[tuple[str, int]]:
    """(label, threads): 1, the app's and the command line's defaults, every logical core; one
    entry per distinct count, labelled with every name it has."""
    environ = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    named = [("1 thread", 1),
             ("app default", choose_threads(None, environ=environ, in_app=True).threads),
             ("CLI default", choose_threads(None, environ=environ, in_app=False).threads),
             ("all logical cores", os.cpu_count() or 1)]
    counts: dict[int, list[str]] = {}
    for label, threads in named:
        counts.setdefault(threads, []).append(label)
    return [(" = ".join(labels), threads) for threads, labels in sorted(counts.items())]


def measure(load: int, rounds: int, model_dir: Path, args) -> dict:
    """One run under ``load`` busy processes: per contender, its step times (paired by round). The
    defaults are chosen once the load runs, as a run starting then would choose them."""
    original = StepLoop.one_step
    processes = start_load(load)
    time.sleep(1.0)  # the load processes are running before the defaults are chosen and the first step
    entries = contenders()
    plan = [entries[(r + i) % len(entries)] for r in range(rounds) for i in range(len(entries))]
    plan = [entries[0]] * WARMUP_STEPS + plan
    times: dict[str, list[float]] = {label: [] for label, _ in entries}

    def timed_step(self, number):
        label, threads = plan[number - 1]
        torch.set_num_threads(threads)
        started = time.perf_counter()
        outcome = original(self, number)
        if number > WARMUP_STEPS:
            times[label].append(time.perf_counter() - started)
        return outcome

    try:
        busy0, total0 = cpu_ticks()
        own0, load0 = process_ticks(), [process_ticks(p.pid) for p in processes]
        StepLoop.one_step = timed_step
        with tempfile.TemporaryDirectory() as out:
            config = bench_config(f"{BASELINE}:grad_ascent", model_dir, Path(out), batch=args.batch,
                                  length=args.length, steps=len(plan))
            config.training.threads = 1  # the engine's own choice; every step sets its contender's
            result = runner.execute(config, method=plain_sft_class())
        busy1, total1 = cpu_ticks()
        own = process_ticks() - own0
        loaded = sum(process_ticks(p.pid) - t for p, t in zip(processes, load0, strict=True))
    finally:
        StepLoop.one_step = original
        stop_load(processes)
    if result.status != "finished":
        raise SystemExit(f"the run {result.status}: {result.error}")
    cpus = os.cpu_count() or 1
    span = (total1 - total0) / cpus  # ticks of one CPU over the run
    return {"load": load, "times": times, "busy": (busy1 - busy0) / span, "own": own / span,
            "load_cores": loaded / span, "others": max(0.0, (busy1 - busy0 - own - loaded) / span)}


def report(results: list[dict], args) -> None:
    cores, cpus = usable_physical_cores(), os.cpu_count()
    print(f"LoRA SFT step through the engine, bench model hidden {args.hidden} x {args.layers} layers, batch "
          f"{args.batch} x {args.length} tokens, fp32; {cores} physical cores ({cpus} logical); "
          f"{args.rounds} rounds, contenders paired step by step, order rotating")
    print(f"{'condition':<34} {'threads':<40} {'median s/step':>13} {'IQR':>13} {'vs 1 thread':>12}")
    for r in results:
        busy = (f"load {r['load']}: busy {r['busy']:.2f} cores (steps {r['own']:.2f}, load {r['load_cores']:.2f}, "
                f"others {r['others']:.2f})")
        print(busy)
        one = r["times"][next(iter(r["times"]))]
        for label, times in r["times"].items():
            q1, _, q3 = statistics.quantiles(times, n=4)
            ratios = [t / o for t, o in zip(times, one, strict=True)]
            print(f"{'':<34} {label:<40} {statistics.median(times):>13.3f} {f'{q1:.2f}-{q3:.2f}':>13} "
                  f"{statistics.median(ratios):>11.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--loads", default="0,1,2", help="busy processes to start, one run per value")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS"):
        print("note: OMP_NUM_THREADS is set; the benchmark sets each step's thread count itself", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_bench_model(Path(folder) / "model", args.hidden, args.layers)
        for load in (int(x) for x in args.loads.split(",")):
            results.append(measure(load, args.rounds, model_dir, args))
            print(f"  measured load {load}", file=sys.stderr, flush=True)
    report(results, args)


if __name__ == "__main__":
    main()
