"""`unlearn-studio export RUN_ID --out DIR`: a finished run's adapter as a standard PEFT folder.

Writes the adapter, tokenizer, config.toml, export.json and a README.md model card; with
``--merged`` also a full model with the adapter merged in, in DIR-merged. Checks that the adapter
is non-zero and that the exported folder, reloaded, reproduces a greedy reference answer.
Exit status: 0 exported and every check passed, 1 exported but a check failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a finished run as a PEFT adapter folder with a model card",
        description="Export a finished run's LoRA adapter as a folder that PeftModel.from_pretrained loads, "
                    "with the tokenizer, the run's config and a README.md model card; the folder is checked "
                    "by reloading it.")
    parser.add_argument("run_id", help="the run to export (its id, as listed in the app or the store)")
    parser.add_argument("--store", help="the project store holding the run (default: the user data folder's)")
    parser.add_argument("--out", required=True, type=Path, help="a new (or empty) folder to write")
    parser.add_argument("--merged", action="store_true",
                        help="also write the full model with the adapter merged in, to OUT-merged")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT (and OUT-merged) if it is an earlier export of Unlearn Studio; a "
                             "folder it did not write is never replaced")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object (progress goes to stderr; a refusal prints "
                             "{\"ok\": false, \"error\": ...})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from unlearn_studio.core.errors import UserError
    from unlearn_studio.core.project.store import Store
    from unlearn_studio.core.results.export import plan_export

    try:
        # Read-only: an export never writes to the store, so it works while the app has it open.
        with Store.open(args.store, readonly=True) as store:
            plan = plan_export(store, _full_run_id(store, args.run_id), args.out, merged=args.merged,
                               overwrite=args.overwrite)
        result = plan.run_export(progress=_progress_printer(args.json))
    except UserError as error:
        if args.json:
            print(json.dumps({"ok": False, "error": {"problem": error.problem, "fix": error.fix}}, indent=2))
        raise
    if args.json:
        print(json.dumps({"ok": result.ok, "out_dir": str(result.out_dir),
                          "merged_dir": str(result.merged_dir) if result.merged_dir else None,
                          "checks": [asdict(check) for check in result.checks], "report": result.report},
                         indent=2, ensure_ascii=False))
        return 0 if result.ok else 1
    for check in result.checks:
        print(f"{'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    print(f"Adapter folder: {result.out_dir}")
    if result.merged_dir is not None:
        print(f"Merged model:   {result.merged_dir}")
    return 0 if result.ok else 1


def _progress_printer(to_stderr: bool):
    """Progress lines on stdout, or on stderr when stdout carries the JSON result."""
    return (lambda message: print(message, file=sys.stderr)) if to_stderr else print


def _full_run_id(store, given: str) -> str:
    """A run id, or an unambiguous prefix of one (the app shows the first 8 characters)."""
    from unlearn_studio.core.errors import UserError

    ids = [row["id"] for row in store.runs()]
    if given in ids:
        return given
    matches = [run_id for run_id in ids if run_id.startswith(given)] if len(given) >= 4 else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"'{given}' is the start of {len(matches)} run ids", "Give more characters of the run id.")
    raise UserError(f"There is no run {given} in the project store {store.path}",
                    "Give the id of a finished run in this store (--store).")
