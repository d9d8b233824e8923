"""Peak memory of each method's training vs plain LoRA SFT on the same model, batch and length.

    python bench/bench_memory.py [--methods npo,sku] [--hidden 512 --layers 8 --batch 4 --length 128]

SFT trains on the method's first data role, so both see rows of the same length. Measured per
run: the peak of the training steps ("steps"), and of it the part above what the run held when
its first step began ("added": activations, gradients, optimizer state, a method's frozen
passes; the weights and the Python runtime are in "steps", the same for every method), beside the
set-up's peak (model, LoRA, the method's ``prepare``: ICU's first refinement, ELM's sampling).
On a GPU these are CUDA's allocated bytes; on a CPU the resident size, sampled every millisecond
(method_cost.CHILD_ENV makes it follow the live tensors). Target (issue 6): steps ≤ 1.15×.
"""

from __future__ import annotations

import argparse

from method_cost import add_arguments, measure_or_load, ratio_rows

TARGET = 1.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    results = measure_or_load(args)
    unit = "gpu" if results[0]["step_gpu_mb"] is not None else "rss"
    for r in [*results, *(r["baseline"] for r in results if r.get("baseline"))]:  # loaded baselines are copies
        r["added_mb"] = r[f"step_{unit}_mb"] - r[f"start_{unit}_mb"]
    print(f"peak memory vs SFT on the same rows (model hidden {args.hidden} x {args.layers} layers, batch "
          f"{args.batch}, max length {args.length}; {results[0]['device']}, "
          f"{'CUDA allocated' if unit == 'gpu' else 'resident memory'})")
    print(f"{'run':<22} {'steps MB':>9} {'ratio':>7} {'added MB':>9} {'ratio':>7} {'set-up MB':>10}")
    for (r, ratio), (_, added) in zip(ratio_rows(results, f"step_{unit}_mb"), ratio_rows(results, "added_mb")):
        shown = f"{ratio:.2f}x" if ratio is not None else ""
        added_shown = f"{added:.2f}x" if added is not None else ""
        verdict = "" if ratio is None else (" ok" if ratio <= TARGET else " MISSED")
        print(f"{r['method']:<22} {r[f'step_{unit}_mb']:>9.0f} {shown:>7} {r['added_mb']:>9.0f} {added_shown:>7} "
              f"{r[f'setup_{unit}_mb']:>10.0f}{verdict}")


if __name__ == "__main__":
    main()
