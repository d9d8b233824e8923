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
    project = actions.add_parser(
        "project", help="write a copy of a demo project that runs on another demo world",
        description="Write a copy of PROJECT whose model, data and reference model are those of the demo world "
        "in --world (a folder `demo build` wrote): the run trains that world's model and is evaluated against "
        "that world's sets and retain model, never the shipped ones.")
    project.add_argument("project", type=Path, help="a project that uses the demo (model \"demo\", demo: data)")
    project.add_argument("--world", type=Path, required=True, help="the demo world's folder (demo build --out)")
    project.add_argument("--out", type=Path, required=True, help="the new project file to write")
    project.set_defaults(handler=write_project)


def run(args: argparse.Namespace) -> int:
    from unlearn_studio.core.demo.build import build_demo

    report = build_demo(args.out, seed=args.seed, threads=args.threads, overwrite=args.overwrite)
    print(json.dumps({"model": report["model"], "retain_model": report["retain_model"],
                      "targets_met": report["targets_met"], "timings": report["timings"]}, indent=2))
    return 0 if all(report["targets_met"].values()) else 1


def write_project(args: argparse.Namespace) -> int:
    from unlearn_studio.core.demo.other_world import write_project_on_world

    moved = write_project_on_world(args.project, args.world, args.out)
    print(f"{args.out}: {moved.name}, with the model {moved.model.path}"
          + (f" and the reference model {moved.evaluation.reference_model}" if moved.evaluation.reference_model else ""))
    print(f"Run it with: unlearn-studio run {args.out}")
    return 0
