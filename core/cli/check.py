"""`unlearn-studio check PROJECT.toml`: everything `run` would check before it starts, and nothing more.

It reads the project file, its data sets (every bad row counted) and its model, then does what a
run does before it writes anything: the method's parameters and data roles, the data read
strictly and tokenized, the model and tokenizer loaded (weights finite), the LoRA adapter
attached, the step count. With ``--store`` a valid project is also registered in the project
store. Nothing is written when anything is wrong. ``--json`` prints one JSON document on stdout.
Exit status: 0 valid, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig

EXIT_BAD_INPUT = 2


def add_parser(subparsers) -> None:
    check = subparsers.add_parser("check", help="check a project as `run` would, without training")
    check.add_argument("project", type=Path, help="the project's TOML file")
    check.add_argument("--store", help="also register the project in this project store")
    check.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.json:
        check(args, print)
        return 0
    try:
        report = check(args, lambda line: None)  # the JSON document says it all
    except UserError as error:
        print(json.dumps({"status": "refused", "project": str(args.project), "problem": error.problem,
                          "fix": error.fix}, indent=2))
        return EXIT_BAD_INPUT
    print(json.dumps(report, indent=2))
    return 0


def check(args: argparse.Namespace, say) -> dict:
    """Check the project, telling ``say`` what was found; the report as a dict (UserError if bad)."""
    # The model's summary and the run's checks load torch and transformers (about 6 s on a busy
    # 2-core machine): only here.
    from unlearn_studio.core.project.summary import summarize_dataset, summarize_model
    from unlearn_studio.core.run.runner import check_run

    config = RunConfig.load(args.project)
    say(f"Project: {config.name}  ({args.project})")
    say(f"Method:  {config.method.name}  LoRA r={config.lora.r} alpha={config.lora.alpha:g}")

    model = summarize_model(config)
    if model.error:
        raise model.error
    facts = model.facts
    say(f"Model:   {facts.architecture}, {facts.n_params:,} parameters, {facts.n_layers} layers  ({model.path})")

    problems, data = [], {}
    say("Data sets:")
    for role in config.data:
        summary = summarize_dataset(config, role)
        if summary.problem:
            problems.append(summary.problem)
            say(f"  {role:<12} {summary.path}: PROBLEM")
            continue
        bad = f", {summary.bad_rows} bad rows" if summary.bad_rows else ""
        say(f"  {role:<12} {summary.path}: {summary.rows} rows, {summary.format}, {summary.kind}{bad}")
        data[role] = {"path": summary.resolved, "rows": summary.rows, "format": summary.format, "kind": summary.kind,
                      "bad_rows": summary.bad_rows}
        if summary.bad_rows:
            problems.append(f"{summary.resolved}: {summary.bad_rows} bad rows (run `unlearn-studio data check` on it)")
    if problems:
        raise UserError("The project's data sets have problems:\n  " + "\n  ".join(problems),
                        "Fix the files or the paths in the project file, then check again.")

    planned = check_run(config)
    method = planned.method
    say(f"Run:     {method.title} in stages {', '.join(planned.stages)}; {planned.total_steps} steps, "
        f"{planned.trainable_parameters:,} trainable parameters; the model loads and its weights are finite")
    report = {"status": "ok", "project": str(args.project.resolve()), "name": config.name,
              "method": {"name": method.name, "params": method.params, "stages": list(planned.stages)},
              "model": {"path": model.path, "architecture": facts.architecture, "parameters": facts.n_params,
                        "layers": facts.n_layers},
              "data": data, "steps": planned.total_steps, "trainable_parameters": planned.trainable_parameters}

    if args.store:
        # sqlite-utils (and pandas with it) take about 1 s to import: only for --store.
        from unlearn_studio.core.project.store import Store

        with Store.open(args.store) as store:
            project_id = store.ensure_project(config.name, args.project.resolve())
        say(f"Registered as project {project_id} in {args.store}")
        report.update(store=str(Path(args.store).resolve()), project_id=project_id)
    say("OK")
    return report
