"""The demo suite's evaluation time, before and after the evaluation was rebuilt, as a share of
the training time of projects/demo.toml, all measured in one process on the same machine.

    OMP_NUM_THREADS=1 python bench/bench_eval.py [--baseline 008361c^] [--rounds 2] [--threads 1]

"before": the evaluation code of ``--baseline`` (the commit before the rebuild), loaded from git
into this process as its own package; it measures the demo world's fixed list of sets
(EvalSuite.demo, tier "demo"). "after": the current code on the demo project's own suite
(projects/demo.toml: its roles with their paraphrase views and its extra sets, tier "fast").
Both evaluate the shipped demo model, taking turns, each with cold caches (the reference / retain
model measured) and warm ones (read from the cache). The training time is one run of
projects/demo.toml without evaluation. Printed: medians in seconds, each as a ratio to training.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from unlearn_studio.core.evaluation.evaluate import evaluate
from unlearn_studio.core.evaluation.suite import EvalSuite
from unlearn_studio.core.model.loading import load_model
from unlearn_studio.core.paths import demo_model_dir, demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.runner import execute

BASELINE_PACKAGE = "unlearn_studio_baseline"


def load_baseline(commit: str, folder: Path):
    """The baseline commit's core/ as package ``unlearn_studio_baseline`` (its absolute imports
    renamed), with this checkout's resources; returns its evaluation module."""
    package = folder / BASELINE_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "core"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(package)], input=archive.stdout, check=True)
    for source in (package / "core").rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        source.write_text(text.replace("unlearn_studio.", f"{BASELINE_PACKAGE}."), encoding="utf-8")
    (package / "resources").symlink_to(ROOT / "resources")
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{BASELINE_PACKAGE}.core.evaluation.evaluate")


def training_seconds(out: Path) -> tuple[float, int]:
    config = RunConfig.load(demo_project())
    config.evaluation.suite = "none"
    config.output.dir = str(out)
    started = time.perf_counter()
    result = execute(config)
    if result.status != "finished":
        raise SystemExit(f"the training run {result.status}: {result.error}")
    return time.perf_counter() - started, result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="008361c^", help="commit whose evaluation is 'before'")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = load_baseline(args.baseline, tmp)
        train_s, steps = training_seconds(tmp / "runs")
        print(f"torch threads {torch.get_num_threads()}; training projects/demo.toml ({steps} steps, no "
              f"evaluation): {train_s:.1f} s")
        loaded = load_model(demo_model_dir(), device="cpu")
        new_suite = EvalSuite.for_config(RunConfig.load(demo_project()))
        contenders = {
            "before": lambda cache: old.evaluate(loaded.model, loaded.tokenizer, old.EvalSuite.demo(), tier="demo",
                                                 cache_dir=cache),
            "after": lambda cache: evaluate(loaded.model, loaded.tokenizer, new_suite, tier="fast", cache_dir=cache),
        }
        times = {(name, state): [] for name in contenders for state in ("cold", "warm")}
        for round_ in range(args.rounds):
            for name, run in contenders.items():
                cache = tmp / f"cache-{name}-{round_}"
                for state in ("cold", "warm"):
                    started = time.perf_counter()
                    run(cache)
                    times[name, state].append(time.perf_counter() - started)
        print(f"demo suite evaluation, median of {args.rounds} rounds taken in turns:")
        for state, words in (("cold", "reference measured"), ("warm", "reference from the cache")):
            before = statistics.median(times["before", state])
            after = statistics.median(times["after", state])
            print(f"  {state} ({words}): before {before:.1f} s = {before / train_s:.2f} x training, "
                  f"after {after:.1f} s = {after / train_s:.2f} x training; after / before {after / before:.2f}")


if __name__ == "__main__":
    main()
