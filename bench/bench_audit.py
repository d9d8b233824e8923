"""The robustness audit's time as a ratio to the training time of the run it audits, both measured
in one process, in turns, on the same machine.

    OMP_NUM_THREADS=1 python bench/bench_audit.py [--project projects/demo.toml] [--rounds 2] [--threads 1]

Each round trains the project (its own settings, no evaluation: the training time alone) and then
audits that run with the default settings (relearning, prompt attacks and probes), each part timed
on its own. Printed: per round the training time, the audit's time and its parts, and the medians
as ratios to training (the issue's target: the audit at most 3x the run's own training time on the
demo). The machine is shared, so the ratio, taken from the same round, is the number to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.results.audit.audit import audit_run
from unlearn_studio.core.run.runner import execute

PARTS = ("relearn", "prompts", "probes")


def train(project: Path, store: Store, out: Path) -> tuple[str, float, int]:
    config = RunConfig.load(project)
    config.evaluation.suite = "none"
    config.output.dir = str(out)
    config.training.checkpoint_every = 1_000_000  # no checkpoint writes in the timed training
    started = time.perf_counter()
    result = execute(config, store=store, project_file=project)
    seconds = time.perf_counter() - started
    if result.status != "finished":
        raise SystemExit(f"the training run {result.status}: {result.error}")
    return result.run_id, seconds, result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=demo_project())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}; project {args.project}")
    ratios, trainings, audits = [], [], []
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "store.db") as store:
        for round_ in range(1, args.rounds + 1):
            run_id, train_s, steps = train(args.project, store, Path(tmp) / "runs")
            started = time.perf_counter()
            result = audit_run(store, run_id)
            audit_s = time.perf_counter() - started
            parts = ", ".join(f"{name} {getattr(result, name).seconds:.1f} s" for name in PARTS
                              if getattr(result, name) is not None)
            print(f"round {round_}: training {steps} steps {train_s:.1f} s; audit {audit_s:.1f} s ({parts}); "
                  f"audit / training {audit_s / train_s:.2f}; verdict {result.verdict.word}")
            ratios.append(audit_s / train_s)
            trainings.append(train_s)
            audits.append(audit_s)
    print(f"median of {args.rounds}: training {statistics.median(trainings):.1f} s, audit "
          f"{statistics.median(audits):.1f} s, audit / training {statistics.median(ratios):.2f} (target: at most 3)")


if __name__ == "__main__":
    main()
