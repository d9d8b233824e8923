"""Peak memory of each method's training vs plain LoRA SFT on the same model, batch and length.

    python bench/bench_memory.py [--methods npo,sku] [--hidden 512 --layers 8 --batch 4 --length 128]

SFT trains on the method's first data role, so both see rows of the same length. On a GPU: the
peak allocated CUDA memory of the training steps (the target's measure), and of the set-up before
them (model, LoRA, the method's ``prepare``: ICU's first refinement, ELM's sampling). On a CPU:
the resident memory the training steps reach (sampled every millisecond), beside the set-up's
peak and the process's overall peak (the Python runtime and the weights are in all of them). Target (issue 6): ≤ 1.15×.
"""

from __future__ import annotations

import argparse

from method_cost import add_arguments, measure_all, ratio_rows

TARGET = 1.15


def verdict(ratio: float | None) -> str:
    return "" if ratio is None else (" ok" if ratio <= TARGET else " MISSED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    results = measure_all(args.methods.split(","), hidden=args.hidden, layers=args.layers, batch=args.batch,
                          length=args.length, steps=args.steps)
    gpu = results[0]["step_gpu_mb"] is not None
    print(f"peak memory vs SFT on the same rows (model hidden {args.hidden} x {args.layers} layers, batch "
          f"{args.batch}, max length {args.length}; {results[0]['device']}, "
          f"{'CUDA peak allocated' if gpu else 'resident memory'})")
    if gpu:
        print(f"{'run':<22} {'steps MB':>9} {'ratio':>7} {'set-up MB':>10} {'ratio':>7}")
        set_up = dict((id(r), ratio) for r, ratio in ratio_rows(results, "setup_gpu_mb"))
        for r, ratio in ratio_rows(results, "step_gpu_mb"):
            shown = f"{ratio:.2f}x" if ratio is not None else ""
            setup_ratio = f"{set_up[id(r)]:.2f}x" if set_up[id(r)] is not None else ""
            print(f"{r['method']:<22} {r['step_gpu_mb']:>9.0f} {shown:>7} {r['setup_gpu_mb']:>10.0f} "
                  f"{setup_ratio:>7}{verdict(ratio)}")
        return
    print(f"{'run':<22} {'steps MB':>9} {'ratio':>7} {'set-up MB':>10} {'peak MB':>8} {'ratio':>7}")
    overall = dict((id(r), ratio) for r, ratio in ratio_rows(results, "peak_rss_mb"))
    for r, ratio in ratio_rows(results, "step_rss_mb"):
        shown = f"{ratio:.2f}x" if ratio is not None else ""
        peak_ratio = f"{overall[id(r)]:.2f}x" if overall[id(r)] is not None else ""
        print(f"{r['method']:<22} {r['step_rss_mb']:>9.0f} {shown:>7} {r['setup_rss_mb']:>10.0f} "
              f"{r['peak_rss_mb']:>8.0f} {peak_ratio:>7}{verdict(ratio)}")


if __name__ == "__main__":
    main()
