"""The robustness audit of the demo projects: each project trained as shipped (its evaluation
off: the audit measures what it needs), then audited with the default settings, one table.

    OMP_NUM_THREADS=1 python bench/audit_demo_projects.py [--projects demo,grad_diff,npo,elm_demo,sku_demo,icu_demo]
                                                          [--json OUT.json]

Per run: the verdict, the recovery ratio of the headline forget metric after 10 and after the
last relearning step for each attack data (0: the reference's level, the model never knew; 1: the
original's), the worst prompt attack and its ratio, and the unlearned model's best probe (layer,
accuracy, chance). Also the audit's time against the run's training time: the project's first
audit (nothing to reuse: a fresh cache folder) and a later one, which takes the original's and
the reference's measurements from the first (core/results/audit/reuse.py), as an audit of another
run of the project does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_audit import train  # noqa: E402 (bench/ is not a package)

from unlearn_studio.core.project.store import Store  # noqa: E402
from unlearn_studio.core.results.audit.audit import audit_run  # noqa: E402

DEFAULT = "demo,grad_diff,npo,elm_demo,sku_demo,icu_demo"


def row(name: str, method: str, train_s: float, summary: dict, audit_s: float, later_s: float) -> str:
    relearn = summary.get("relearn") or {}
    ratios = "; ".join(f"{data} " + "/".join(f"{value:.2f}" if value is not None else "–" for value in by_k.values())
                       for data, by_k in relearn.items())
    worst = summary.get("worst_prompt") or {}
    probe = summary.get("best_probe") or {}
    worst_text = f"{worst.get('attack')} {worst['ratio']:.2f}" if worst.get("ratio") is not None else "–"
    probe_text = (f"{probe.get('layer')} {probe['accuracy']:.2f} (chance {probe.get('chance') or 0:.2f})"
                  if probe.get("accuracy") is not None else "–")
    return (f"| {name} | {method} | {summary.get('verdict')} | {summary.get('metric')} on {summary.get('set')} | "
            f"{ratios or '–'} | {worst_text} | {probe_text} | {audit_s / train_s:.1f}x | {later_s / train_s:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", default=DEFAULT)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, documents = [], {}
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "store.db") as store:
        for name in args.projects.split(","):
            project = ROOT / "projects" / f"{name}.toml"
            run_id, train_s, steps = train(project, store, Path(tmp) / "runs")
            reuse_dir = Path(tmp) / f"reuse-{name}"
            result = audit_run(store, run_id, reuse_dir=reuse_dir)
            later = audit_run(store, run_id, record=False, reuse_dir=reuse_dir)
            summary = result.summary()
            documents[name] = summary | {"train_seconds": train_s, "steps": steps, "later_seconds": later.seconds}
            rows.append(row(name, result.method, train_s, summary, result.seconds, later.seconds))
            print(f"{name}: trained {steps} steps in {train_s:.0f} s, audited in {result.seconds:.0f} s "
                  f"(a later audit {later.seconds:.0f} s): {summary.get('verdict')}", flush=True)
    print("| project | method | verdict | headline forget metric | relearning ratio after 10 / last step, "
          "per attack data | worst prompt attack (ratio) | unlearned model's best probe | first audit / training "
          "| later audit / training |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(documents, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
