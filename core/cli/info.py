"""`unlearn-studio info MODEL`: what a model is and where LoRA can go, without loading weights."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``info`` subcommand."""
    parser = subparsers.add_parser(
        "info",
        help="show a model's architecture, size and LoRA targets (no weights are loaded)",
        description="Show a model's architecture, size and LoRA targets. Only config.json is read.",
    )
    parser.add_argument("model", metavar="MODEL", help="model folder (or a hub id with --allow-network)")
    parser.add_argument(
        "--layers",
        default=None,
        help="layers to count LoRA targets in: '4-7', '4,5,7' or a fraction of depth '0.125-0.25' (default: all)",
    )
    parser.add_argument("--roles", default="auto",
                        help="LoRA roles to plan for: 'auto' (every projection the model has, the default) or "
                             "a list such as 'q,v'")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="LoRA dropout to plan for (PEFT adapts experts' 3-D weights only without it)")
    parser.add_argument("--json", action="store_true", help="print the facts and targets as JSON")
    parser.add_argument("--allow-network", action="store_true", help="treat MODEL as a hub id if it is not a folder")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model's own Python code to run")
    parser.set_defaults(handler=run)
    return parser


def human_count(n: int) -> str:
    """2_100_000 -> "2.10M"; small counts stay as they are."""
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def run(args: argparse.Namespace) -> int:
    """Print the model's facts, its LoRA targets per role and what LoRA would adapt; UserError on bad input."""
    # These load torch and transformers: only when the command runs (see the package docstring).
    from unlearn_studio.core.model.loading import inspect_model_folder
    from unlearn_studio.core.model.lora_plan import plan_lora
    from unlearn_studio.core.model.lora_targets import (
        ROLES,
        find_decoder_layers,
        find_expert_parameters,
        find_lora_targets,
        resolve_layers,
    )

    # Same facts as describe_model_folder, keeping the meta model to list full module names.
    model, facts = inspect_model_folder(
        args.model, trust_remote_code=args.trust_remote_code, allow_network=args.allow_network
    )
    _, layer_list = find_decoder_layers(model)
    layers = resolve_layers(args.layers, len(layer_list))
    targets = {role: find_lora_targets(model, roles=[role], layers=args.layers)
               for role in facts.lora_targets}
    experts = {role: find_expert_parameters(model, [role], args.layers) for role in facts.expert_targets}
    plan = plan_lora(model, args.roles, args.layers, dropout=args.dropout)

    if args.json:
        print(json.dumps({**asdict(facts), "selected_layers": layers, "targets": targets,
                          "expert_parameters": experts, "lora_plan": plan.to_dict(),
                          "lora_summary": plan.summary()}, indent=2))
        return 0

    layer_text = "all layers" if len(layers) == len(layer_list) else "layers " + ", ".join(map(str, layers))
    print(f"Model:         {args.model}")
    print(f"Architecture:  {facts.architecture} (model_type {facts.model_type})")
    print(f"Parameters:    {human_count(facts.n_params)} ({facts.n_params:,})")
    print(f"Layers:        {facts.n_layers} ({facts.layer_module_pattern})")
    print(f"Hidden size:   {facts.hidden_size}")
    print(f"Vocabulary:    {facts.vocab_size}")
    print(f"Dtype:         {facts.dtype} on {facts.device} (what loading would choose)")
    print(f"LoRA targets in {layer_text}:")
    for role in ROLES:
        if role not in targets and role not in experts:
            print(f"  {role:<5} (none in this architecture)")
            continue
        if role in targets:
            names = targets[role]
            print(f"  {role:<5} {', '.join(facts.lora_targets[role]):<22} "
                  f"{len(names)} module{'s' if len(names) != 1 else ''}, e.g. {names[0]}")
        if role in experts:
            names = experts[role]
            label = "" if role in targets else role
            print(f"  {label:<5} {', '.join(facts.expert_targets[role]):<22} "
                  f"{len(names)} expert weight{'s' if len(names) != 1 else ''} (3-D), e.g. {names[0]}")
    print(f"With roles {args.roles!r}: {plan.summary()}")
    return 0
