"""`unlearn-studio eval`: evaluate a model, or a LoRA adapter against its base model, on a project.

Without --adapter: every metric of the model with its 95% interval and, for forget metrics, the
target level. With --adapter: the base model ("before", from the cache when it was evaluated
earlier) and the model with the adapter ("after"), judged metric by metric with the verdicts of
core/evaluation/verdicts.py. The suite is the project's (default: the demo project): its data
roles and its [evaluation.sets]. --explain prints what every metric means. A progress bar goes
to stderr, so that --json prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.suite import EvalSuite, tier_sizes
from unlearn_studio.core.events import EvaluationProgressEvent
from unlearn_studio.core.paths import demo_model_dir, demo_project
from unlearn_studio.core.project.config import RunConfig

TIERS = ("fast", "full", "demo")
BAR_WIDTH = 24


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model, or an adapter against its base model, with a project's evaluation suite",
        description="Evaluate a model on a project's evaluation suite (its data roles and extra sets; default "
        "the demo project). With --adapter the base model and the adapter are judged before/after: every "
        "metric with its change, 95%% interval, target and verdict.",
    )
    parser.add_argument("--project", default=None, help="project file (.toml) whose suite is evaluated "
                                                        "(default: the demo project)")
    parser.add_argument("--model", default=None, help="model folder (default: the project's model)")
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder: judge it against the model")
    parser.add_argument("--suite", choices=TIERS, default=None,
                        help="fast (first items of each set) or full (default: the project's tier, else fast)")
    parser.add_argument("--reference-model", default=None,
                        help="a model trained without the forget data (default: the project's "
                             "evaluation.reference_model): forget quality, PrivLeak, target levels")
    parser.add_argument("--out", default=None, help="folder for the per-item results (eval_items.json)")
    parser.add_argument("--cache-dir", default=None, help="folder for the evaluation caches")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--all", action="store_true", help="show every metric, not only the headline ones")
    parser.add_argument("--explain", action="store_true", help="print what every metric means, and exit")
    parser.set_defaults(handler=run)
    return parser


class ProgressBar:
    """Draws evaluation progress: one line rewritten in place on a terminal, else a line per set."""

    def __init__(self, out: TextIO):
        self.out = out
        self.tty = out.isatty()
        self.last_set = None

    def __call__(self, event: EvaluationProgressEvent) -> None:
        where = f"{event.phase} " if event.phase else ""
        eta = f"  eta {_duration(event.eta_s)}" if event.eta_s is not None else ""
        if self.tty:
            filled = BAR_WIDTH * event.done // max(event.total, 1)
            self.out.write(f"\r{where}{event.set_name} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] "
                           f"{event.done}/{event.total}{eta}\033[K")
        elif (event.phase, event.set_name) != self.last_set:
            self.out.write(f"{where}{event.set_name}: {event.total} items{eta}\n")
        self.last_set = (event.phase, event.set_name)
        self.out.flush()

    def close(self) -> None:
        if self.tty and self.last_set is not None:
            self.out.write("\n")
            self.out.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _setup(args: argparse.Namespace):
    """(config, suite, tier, model folder)."""
    config = RunConfig.load(Path(args.project) if args.project else demo_project())
    tier = args.suite or (config.evaluation.suite if config.evaluation.suite != "none" else "fast")
    tier_sizes(tier)
    suite = EvalSuite.for_config(config)
    if args.reference_model:
        suite = suite.with_reference(args.reference_model)
    if args.model == "demo":
        model_dir = str(demo_model_dir())
    else:
        model_dir = args.model or config.resolve_model_path()
    return config, suite, tier, model_dir


def run(args: argparse.Namespace) -> int:
    """Evaluate and print a table (or JSON); --explain prints the metrics' meanings."""
    # Imported here: scipy takes 2 s to import and torch 6 s on this machine, which `--help` and the
    # other commands need not wait for.
    from unlearn_studio.core.evaluation.table import explain, format_judgement, format_rows

    if args.explain:
        print(explain())
        return 0
    from unlearn_studio.core.evaluation.evaluate import evaluate
    from unlearn_studio.core.evaluation.verdicts import describe, judge
    from unlearn_studio.core.model.loading import load_adapter, load_model

    if args.adapter and not (Path(args.adapter) / "adapter_config.json").is_file():
        raise UserError(f"'{args.adapter}' is not a LoRA adapter folder (it has no adapter_config.json).",
                        "Point --adapter at the folder a run exported, which holds adapter_config.json.")
    config, suite, tier, model_dir = _setup(args)
    loaded = load_model(model_dir, dtype=config.model.dtype, device=config.model.device,
                        trust_remote_code=config.model.trust_remote_code, allow_network=config.model.allow_network)
    bar = ProgressBar(sys.stderr)
    out = Path(args.out) if args.out else None
    try:
        if args.adapter:
            model = load_adapter(loaded.model, args.adapter)
            with model.disable_adapter():
                before = evaluate(model, loaded.tokenizer, suite, tier=tier, cache_dir=args.cache_dir,
                                  base_model_dir=model_dir if Path(model_dir).is_dir() else None,
                                  out_dir=out / "before" if out else None, progress=bar, phase="before")
            after = evaluate(model, loaded.tokenizer, suite, tier=tier, cache_dir=args.cache_dir, before=before,
                             out_dir=out / "after" if out else None, progress=bar, phase="after")
        else:
            after = evaluate(loaded.model, loaded.tokenizer, suite, tier=tier, cache_dir=args.cache_dir,
                             out_dir=out, progress=bar)
    finally:
        bar.close()
    header = {"suite": suite.name, "tier": tier, "model": model_dir, "adapter": args.adapter,
              "reference_model": str(suite.reference_model) if suite.reference_model else None,
              "seconds": round(after.seconds + (before.seconds if args.adapter else 0), 2)}
    if args.adapter:
        judgement = judge(before, after)
        if args.json:
            print(json.dumps({**header, "judgement": judgement.to_dict(),
                              "items_paths": {"before": _path(before), "after": _path(after)}}, indent=2))
            return 0
        print(f"Model: {model_dir}; before = the model alone, after = with the adapter {args.adapter}")
        print(f"Suite: {suite.name}, tier {tier} ({header['seconds']:.1f} s)\n")
        print(format_judgement(judgement, every_row=args.all))
        return 0
    rows = describe(after)
    if args.json:
        print(json.dumps({**header, "metrics": [row.to_dict() for row in rows], "skipped": after.skipped,
                          "items_path": _path(after)}, indent=2))
        return 0
    print(f"Model: {model_dir}\nSuite: {suite.name}, tier {tier} ({after.seconds:.1f} s)\n")
    print(format_rows(rows if args.all else [r for r in rows if r.headline], after.skipped))
    if after.items_path:
        print(f"Per-item results: {after.items_path}")
    return 0


def _path(result) -> str | None:
    return str(result.items_path) if result.items_path else None
