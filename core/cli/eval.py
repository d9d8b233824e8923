"""`unlearn-studio eval`: run the evaluation suite on a model (optionally with a LoRA adapter)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from unlearn_studio.core.errors import UserError

SUITES = ("demo", "fast", "full")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model (and adapter) with the evaluation suite",
        description="Evaluate a model, optionally with a LoRA adapter, and print the aggregate metrics. "
        "Suite 'demo' evaluates the demo world's sets at the fast tier's sizes; 'fast' and 'full' "
        "evaluate the data roles of --project (the demo world's sets without one) on the first "
        "items of each set or on all of them.",
    )
    parser.add_argument("--model", default=None,
                        help="model folder; 'demo' is the built-in demo model (default: the project's model, else demo)")
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder to evaluate on top of the model")
    parser.add_argument("--suite", choices=SUITES, default=None,
                        help="demo, fast or full (default: the project's evaluation suite, else demo)")
    parser.add_argument("--project", default=None, help="project file (.toml) whose data roles are evaluated")
    parser.add_argument("--retain-model", default=None,
                        help="retain model folder for forget quality and PrivLeak (default: the demo's, for demo data)")
    parser.add_argument("--out", default=None, help="folder for the per-item results (eval_items.json)")
    parser.add_argument("--cache-dir", default=None, help="folder for the evaluation caches")
    parser.add_argument("--json", action="store_true", help="print the aggregates as JSON")
    parser.set_defaults(handler=run)
    return parser


def _load(args: argparse.Namespace):
    """(config or None, suite, tier, model folder, dtype, device)."""
    from unlearn_studio.core.evaluation.evaluate import EvalSuite
    from unlearn_studio.core.paths import demo_model_dir
    from unlearn_studio.core.project.config import RunConfig

    config = RunConfig.load(Path(args.project)) if args.project else None
    tier = args.suite or (config.evaluation.suite if config and config.evaluation.suite != "none" else "demo")
    if config is not None and tier != "demo":
        suite = EvalSuite.from_config(config, retain_model=args.retain_model)
    else:
        suite = EvalSuite.demo(retain_model=args.retain_model)
    if args.model in (None, "demo"):
        model_dir = config.resolve_model_path() if config is not None and args.model is None else str(demo_model_dir())
    else:
        model_dir = args.model
    dtype = config.model.dtype if config is not None else "auto"
    device = config.model.device if config is not None else "auto"
    return config, suite, tier, model_dir, dtype, device


def _format(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def run(args: argparse.Namespace) -> int:
    """Load the model (and adapter), evaluate, print a table of aggregates (or JSON)."""
    from unlearn_studio.core.evaluation.evaluate import evaluate
    from unlearn_studio.core.model.loading import load_adapter, load_model

    if args.adapter and not (Path(args.adapter) / "adapter_config.json").is_file():
        raise UserError(f"'{args.adapter}' is not a LoRA adapter folder (it has no adapter_config.json).",
                        "Point --adapter at the folder a run exported, which holds adapter_config.json.")
    config, suite, tier, model_dir, dtype, device = _load(args)
    loaded = load_model(model_dir, dtype=dtype, device=device,
                        trust_remote_code=bool(config and config.model.trust_remote_code),
                        allow_network=bool(config and config.model.allow_network))
    model = loaded.model
    if args.adapter:
        model = load_adapter(model, args.adapter)
    result = evaluate(model, loaded.tokenizer, suite, tier=tier, out_dir=args.out, cache_dir=args.cache_dir)

    if args.json:
        print(json.dumps({"suite": suite.name, "tier": tier, "model": model_dir, "adapter": args.adapter,
                          "seconds": round(result.seconds, 2), "aggregates": result.aggregates,
                          "warnings": result.warnings,
                          "items_path": str(result.items_path) if result.items_path else None}, indent=2))
        return 0
    width = max(len("metric"), *(len(k) for k in result.aggregates))
    print(f"Model: {model_dir}" + (f" + adapter {args.adapter}" if args.adapter else ""))
    print(f"Suite: {suite.name}, tier {tier} ({result.seconds:.1f} s)")
    print(f"{'metric':<{width}}  value")
    for key, value in result.aggregates.items():
        print(f"{key:<{width}}  {_format(value)}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.items_path:
        print(f"Per-item results: {result.items_path}")
    return 0
