"""Time per token of each method's training step, as a ratio to plain LoRA SFT (one run, one machine).

    python bench/bench_step.py [--methods npo,sku] [--hidden 512 --layers 8 --batch 4 --length 128]

Targets (issue 6): GradAscent/GradDiff ≤ 1.1×, NPO/SKU/ICU ≤ 1.5×, ELM ≤ 2.2×.
"""

from __future__ import annotations

import argparse

from method_cost import BASELINE, add_arguments, measure_all

TARGETS = {"grad_ascent": 1.1, "grad_diff": 1.1, "npo": 1.5, "sku": 1.5, "icu": 1.5, "elm": 2.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    results = measure_all(args.methods.split(","), hidden=args.hidden, layers=args.layers, batch=args.batch,
                          length=args.length, steps=args.steps)
    base = next(r for r in results if r["method"] == BASELINE)
    print(f"time per token vs {BASELINE} (model hidden {args.hidden} x {args.layers} layers, batch {args.batch}, "
          f"max length {args.length}; median of steps after warm-up)")
    print(f"{'method':<12} {'ms/1k tok':>10} {'ratio':>7} {'target':>7}")
    for r in results:
        ratio = r["seconds_per_token"] / base["seconds_per_token"]
        target = TARGETS.get(r["method"])
        verdict = "" if target is None else (" ok" if ratio <= target else " MISSED")
        print(f"{r['method']:<12} {r['seconds_per_token'] * 1e6:>10.1f} {ratio:>6.2f}x "
              f"{(f'{target:.1f}x' if target else ''):>7}{verdict}")


if __name__ == "__main__":
    main()
