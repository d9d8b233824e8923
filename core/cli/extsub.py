"""`unlearn-studio extsub`: combine an expert and an anti-expert LoRA adapter into a new adapter.

Ext-Sub (arXiv 2308.08090) by default; subtraction, addition and negation on request. The result
is an ordinary PEFT adapter folder (an exact LoRA of rank ≤ r_expert + r_anti).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    # OPERATIONS is repeated here so that `--help` needs no torch import.
    operations = ("ext-sub", "subtraction", "addition", "negation")
    parser = subparsers.add_parser(
        "extsub", help="combine an expert and an anti-expert LoRA adapter (Ext-Sub and other operations)",
        description="Combine two LoRA adapters trained on the same base model into a new one. ext-sub removes "
        "from the expert only the part of the anti-expert that is not shared with it; subtraction and addition "
        "are plain W_expert ∓ alpha·W_anti; negation is −alpha·W_expert (no anti-expert).")
    parser.add_argument("--expert", type=Path, required=True, help="the expert adapter folder")
    parser.add_argument("--anti-expert", type=Path, default=None,
                        help="the anti-expert adapter folder (not for negation)")
    parser.add_argument("--alpha", type=float, default=1.0, help="strength λ of the anti-expert (default 1.0)")
    parser.add_argument("--op", choices=operations, default="ext-sub", help="the operation (default ext-sub)")
    parser.add_argument("--out", type=Path, required=True, help="a new (or empty) folder to write the combined adapter to")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT if it is an earlier output of Unlearn Studio (a folder it did not "
                             "write is never replaced)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from unlearn_studio.core.model.adapters import PROVENANCE_FILE, combine_adapters, read_adapter

    out = combine_adapters(args.expert, args.anti_expert, args.out, op=args.op, alpha=args.alpha,
                           overwrite=args.overwrite)
    result = read_adapter(out)
    ranks = sorted({module.rank for module in result.modules.values()})
    print(f"{args.op} (alpha {args.alpha:g}): {len(result.modules)} modules, rank {ranks[-1]}; adapter written to {out}")
    print(f"Load it with PeftModel.from_pretrained(base_model, \"{out}\"); what was combined is in "
          f"{out / PROVENANCE_FILE}.")
    return 0
