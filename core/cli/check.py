"""`unlearn-studio check PROJECT.toml`: validate a project file, its data sets and its model.

Reads everything the project names and reports it; with ``--store`` a valid project is also
registered in the project store. Nothing is written when anything is wrong.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.summary import summarize_dataset, summarize_model


def add_parser(subparsers) -> None:
    check = subparsers.add_parser("check", help="validate a project file, its data sets and its model")
    check.add_argument("project", type=Path, help="the project's TOML file")
    check.add_argument("--store", help="also register the project in this project store")
    check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = RunConfig.load(args.project)
    print(f"Project: {config.name}  ({args.project})")
    print(f"Method:  {config.method.name}  LoRA r={config.lora.r} alpha={config.lora.alpha:g}")

    model = summarize_model(config)
    if model.error:
        raise model.error
    facts = model.facts
    print(f"Model:   {facts.architecture}, {facts.n_params:,} parameters, {facts.n_layers} layers  ({model.path})")

    problems = []
    print("Data sets:")
    for role in config.data:
        summary = summarize_dataset(config, role)
        if summary.problem:
            problems.append(summary.problem)
            print(f"  {role:<12} {summary.path}: PROBLEM")
            continue
        bad = f", {summary.bad_rows} bad rows" if summary.bad_rows else ""
        print(f"  {role:<12} {summary.path}: {summary.rows} rows, {summary.format}, {summary.kind}{bad}")
        if summary.bad_rows:
            problems.append(f"{summary.resolved}: {summary.bad_rows} bad rows (run `unlearn-studio data check` on it)")
    if problems:
        raise UserError("The project's data sets have problems:\n  " + "\n  ".join(problems),
                        "Fix the files or the paths in the project file, then check again.")

    if args.store:
        from unlearn_studio.core.project.store import Store

        with Store.open(args.store) as store:
            project_id = store.ensure_project(config.name, args.project.resolve())
        print(f"Registered as project {project_id} in {args.store}")
    print("OK")
    return 0

