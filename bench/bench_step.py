"""Time per token of each method's training step, as a ratio to plain LoRA SFT (one run, one machine).

    python bench/bench_step.py [--methods npo,sku] [--hidden 512 --layers 8 --batch 4 --length 128]

Tokens are those the adapter trains on in a step (every pass with gradients); SFT trains on the
method's first data role, so both see rows of the same length. Targets (issue 6):
GradAscent/GradDiff ≤ 1.1×, NPO/SKU/ICU ≤ 1.5×, ELM ≤ 2.2×. Also each run's trained tokens per
second and model FLOPs utilisation (flops.py: on a GPU against its data-sheet bf16 peak, on the
CPU against a large fp32 matmul measured here).
"""

from __future__ import annotations

import argparse

from flops import cpu_peak_flops, gpu_peak_flops
from method_cost import add_arguments, measure_or_load, ratio_rows

TARGETS = {"grad_ascent": 1.1, "grad_diff": 1.1, "npo": 1.5, "sku": 1.5, "icu": 1.5, "elm": 2.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    results = measure_or_load(args)
    device = results[0]["device"]
    peak = cpu_peak_flops() if device == "cpu" else gpu_peak_flops(device)
    print(f"time per trained token vs SFT on the same rows (model hidden {args.hidden} x {args.layers} layers, "
          f"batch {args.batch}, max length {args.length}; steps after warm-up; {device}"
          + (f"; MFU against {peak / 1e12:.3g} TFLOP/s" if peak else "") + ")")
    print(f"{'run':<22} {'ms/step':>8} {'tok/step':>9} {'ms/1k tok':>10} {'tok/s':>8} {'MFU':>6} {'ratio':>7} "
          f"{'target':>7}")
    for r, ratio in ratio_rows(results, "seconds_per_token"):
        target = TARGETS.get(r["method"])
        verdict = "" if target is None or ratio is None else (" ok" if ratio <= target else " MISSED")
        shown = f"{ratio:.2f}x" if ratio is not None else ""
        against = f" vs {r['baseline']['method']}" if r.get("baseline") else ""
        rate = 1 / r["seconds_per_token"]
        mfu = f"{rate * r['flops_per_token'] / peak:.3f}" if peak and r.get("flops_per_token") else ""
        print(f"{r['method']:<22} {r['seconds_per_step'] * 1e3:>8.1f} {r['tokens_per_step']:>9.0f} "
              f"{r['seconds_per_token'] * 1e6:>10.1f} {rate:>8.0f} {mfu:>6} {shown:>7} "
              f"{(f'{target:.1f}x' if target else ''):>7}{verdict}{against}")

if __name__ == "__main__":
    main()
