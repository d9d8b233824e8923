"""Peak memory of each method's training vs plain LoRA SFT on the same model, batch and length.

    python bench/bench_memory.py [--methods npo,sku] [--hidden 512 --layers 8 --batch 4 --length 128]

On a GPU: peak allocated CUDA memory of the run. On a CPU: the process's peak resident memory,
and the part that training added to it (peak minus the resident memory once the model is loaded),
since the Python runtime and the weights are the same for every method. Target (issue 6): ≤ 1.15×.
"""

from __future__ import annotations

import argparse

from method_cost import BASELINE, add_arguments, measure_all

TARGET = 1.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    results = measure_all(args.methods.split(","), hidden=args.hidden, layers=args.layers, batch=args.batch,
                          length=args.length, steps=args.steps)
    base = next(r for r in results if r["method"] == BASELINE)
    gpu = base["peak_gpu_mb"] is not None
    print(f"peak memory vs {BASELINE} (model hidden {args.hidden} x {args.layers} layers, batch {args.batch}, "
          f"max length {args.length}; {'CUDA peak allocated' if gpu else 'CPU resident memory'})")
    if gpu:
        print(f"{'method':<12} {'peak MB':>9} {'ratio':>7}")
    else:
        print(f"{'method':<12} {'peak MB':>9} {'ratio':>7} {'training MB':>12} {'ratio':>7}")
    for r in results:
        if gpu:
            ratio = r["peak_gpu_mb"] / base["peak_gpu_mb"]
            print(f"{r['method']:<12} {r['peak_gpu_mb']:>9.0f} {ratio:>6.2f}x{'' if ratio <= TARGET else ' MISSED'}")
        else:
            ratio = r["peak_rss_mb"] / base["peak_rss_mb"]
            training = r["training_rss_mb"] / max(base["training_rss_mb"], 1e-9)
            print(f"{r['method']:<12} {r['peak_rss_mb']:>9.0f} {ratio:>6.2f}x {r['training_rss_mb']:>12.0f} "
                  f"{training:>6.2f}x{'' if ratio <= TARGET else ' MISSED'}")


if __name__ == "__main__":
    main()
