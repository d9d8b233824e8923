"""`unlearn-studio demo build --seed N --out DIR`: rebuild the demo world and its models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="the built-in demo world and models")
    actions = demo.add_subparsers(dest="demo_command", required=True)
    build = actions.add_parser("build", help="generate the world, train the tokenizer, the model and the retain model")
    build.add_argument("--seed", type=int, default=0, help="world and training seed (default 0, the shipped build)")
    build.add_argument("--out", type=Path, required=True, help="a new (or empty) folder to write")
    build.add_argument("--overwrite", action="store_true",
                       help="replace OUT when it is an earlier demo build (it is replaced only when the new build "
                            "succeeds; a folder Unlearn Studio did not write is never replaced)")
    build.add_argument("--threads", type=int, default=2,
                       help="torch threads; the build is bit-for-bit reproducible for a given count (default 2)")
    build.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from unlearn_studio.core.demo.build import build_demo

    report = build_demo(args.out, seed=args.seed, threads=args.threads, overwrite=args.overwrite)
    print(json.dumps({"model": report["model"], "retain_model": report["retain_model"],
                      "targets_met": report["targets_met"], "timings": report["timings"]}, indent=2))
    return 0 if all(report["targets_met"].values()) else 1
