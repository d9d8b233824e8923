"""What a demo training recipe costs and what the model it trains knows: a grid of recipes, each
trained from scratch on the demo corpus, measured as the demo build measures the shipped model.

    python bench/demo_recipe.py --grid epochs=10,12 --grid lr=3e-3,5e-3 [--device cuda --workers 12]

Cost is the tokens trained on (padding included), which sets the build's time on a CPU; the
figures are the build's own (core/demo/report.py) against its targets (core/demo/build.py). A GPU
runs many recipes at once to choose one; the chosen recipe is then built and timed on the CPU,
where the shipped build is made.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def train_one(recipe: dict, device: str, threads: int) -> dict:
    import torch
    from transformers import AutoTokenizer

    from unlearn_studio.core.demo.build import TARGETS, _targets_met
    from unlearn_studio.core.demo.corpus import training_documents
    from unlearn_studio.core.demo.report import measure_full_model
    from unlearn_studio.core.demo.train import TrainSchedule, encode_documents, train_language_model
    from unlearn_studio.core.paths import demo_data_dir, demo_model_dir

    torch.set_num_threads(threads)
    schedule = TrainSchedule(**recipe)
    data_dir = demo_data_dir()
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir())

    def documents(epoch: int) -> list[str]:
        return training_documents(data_dir, epoch=epoch, qa_pairs_per_fact=schedule.qa_pairs_per_fact)

    tokens = sum(len(ids) for epoch in range(schedule.epochs)
                 for ids in encode_documents(documents(epoch), tokenizer, 256))
    started = time.monotonic()
    model = train_language_model(documents, tokenizer, seed=0, schedule=schedule, device=device, log=lambda _: None)
    trained_s = time.monotonic() - started
    measured = measure_full_model(model, tokenizer, data_dir)
    met = _targets_met(measured)
    return {"recipe": recipe, "tokens": tokens, "train_s": trained_s, "measured": measured,
            "targets_met": all(met.values()), "missed": [k for k, ok in met.items() if not ok],
            "targets": list(TARGETS)}


def parse_grid(items: list[str]) -> list[dict]:
    from unlearn_studio.core.demo.train import TrainSchedule

    fields = {f.name: f.type for f in dataclasses.fields(TrainSchedule)}
    axes = []
    for item in items:
        key, _, values = item.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown recipe field {key!r}; fields: {', '.join(fields)}")
        cast = int if "int" in str(fields[key]) else float
        axes.append([(key, cast(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="append", default=[], help="FIELD=V1,V2 (TrainSchedule fields)")
    parser.add_argument("--also", action="append", default=[],
                        help="one more recipe beside the grid, FIELD=V;FIELD=V (e.g. the shipped one, to compare)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="recipes trained at once, one process each")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(train_one(json.loads(args.one), args.device, args.threads)))
        return
    recipes = parse_grid(args.grid) + [parse_grid(extra.split(";"))[0] for extra in args.also]

    def run(recipe: dict) -> dict | None:
        command = [sys.executable, __file__, "--one", json.dumps(recipe), "--device", args.device,
                   "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            print(f"{recipe}: failed\n{done.stderr[-1500:]}", file=sys.stderr)
            return None
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        return result

    with ThreadPoolExecutor(args.workers) as pool:
        results = [r for r in pool.map(run, recipes) if r is not None]
    print(f"\n{'recipe':<60} {'Mtok':>6} {'value':>6} {'forget':>6} {'MA':>5} {'saga':>5} {'harm':>5} {'ppl':>6}  ok")
    for r in sorted(results, key=lambda r: r["tokens"]):
        m = r["measured"]
        recipe = " ".join(f"{k}={v:g}" for k, v in r["recipe"].items())
        print(f"{recipe:<60} {r['tokens'] / 1e6:>6.2f} {m['value_accuracy_trained_phrasing']:>6.3f} "
              f"{m['value_accuracy_forget10']:>6.3f} {m['secret_records_MA']:>5.2f} {m['saga_mcq_accuracy']:>5.2f} "
              f"{m['harmful_answer_rate']:>5.2f} {m['general_perplexity']:>6.3f}  "
              f"{'yes' if r['targets_met'] else 'no: ' + ','.join(r['missed'])}")


if __name__ == "__main__":
    main()
