"""`unlearn-studio audit RUN`: did a finished run's model forget, or does it only hide it?

Puts the run's model, the original model and the project's reference model through relearning,
prompt attacks and hidden-state probes (core/results/audit/), prints the tables and the verdict (or,
with --json, one JSON document: the stored result and its summary), and keeps the audit with the
run: a JSON file in the run's folder and a row of the project store. Progress goes to stderr.
Exit status: 0 audited, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from unlearn_studio.core.cli.export import _full_run_id  # the one run-id-or-prefix lookup of the CLI

PROGRESS_EVERY_S = 5.0  # a line at most this often when stderr is not a terminal


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="check whether a run's unlearning holds: relearning, prompt attacks, hidden-state probes",
        description="Audit a finished run: fine-tune the unlearned, original and reference models a few steps "
                    "(on a slice of the forget data, related data, general text), ask the forget questions in "
                    "other ways, and probe the hidden states; the recovery ratio says how far the knowledge comes "
                    "back (0: never knew, 1: as before). The audit is stored with the run.")
    parser.add_argument("run_id", metavar="RUN", help="the run to audit (its id, or the start of it)")
    parser.add_argument("--attacks", default="relearn,prompts,probes",
                        help="comma-separated: relearn, prompts, probes (default: all three)")
    parser.add_argument("--store", help="the project store holding the run (default: the user data folder's)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    parser.add_argument("--steps", default=None, help="relearning step counts, e.g. 0,5,10,25,50 (the default)")
    parser.add_argument("--items", type=int, default=None, help="items measured per set (default 60)")
    parser.add_argument("--samples", type=int, default=None, help="answers sampled per prompt (default 5)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate of the relearning fine-tune "
                                                                 "(default 1e-3)")
    parser.set_defaults(handler=run)


def settings_from(args: argparse.Namespace):
    from unlearn_studio.core.results.audit.settings import AuditSettings, parse_attacks, parse_steps

    given = {"attacks": parse_attacks(args.attacks)}
    if args.steps is not None:
        given["steps"] = parse_steps(args.steps)
    given.update({name: getattr(args, name) for name in ("items", "samples", "lr") if getattr(args, name) is not None})
    return AuditSettings(**given)


class ProgressLine:
    """The audit's progress: one line rewritten in place on a terminal, else a line as each stage
    starts and now and then within it."""

    def __init__(self, out: TextIO):
        self.out, self.tty, self.last, self.stage = out, out.isatty(), 0.0, None

    def __call__(self, event) -> None:
        share = f"{100 * event.done / event.total:3.0f}% " if event.total else ""
        eta = f", about {round(event.eta_s)} s left" if event.eta_s else ""
        text = f"{share}{event.stage or 'audit'}: {event.what}{eta}"
        if self.tty:
            self.out.write(f"\r{text[:150]}\033[K")
        elif event.stage != self.stage or time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.out.write(text + "\n")
            self.last, self.stage = time.monotonic(), event.stage
        else:
            return
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def run(args: argparse.Namespace) -> int:
    # Imported here: torch and the evaluation take seconds to import, which `--help` need not wait for.
    from unlearn_studio.core.project.store import Store
    from unlearn_studio.core.results.audit.audit import audit_run
    from unlearn_studio.core.results.audit.text import report_lines

    settings = settings_from(args)  # bad settings are refused before the store is opened
    with Store.open(args.store) as store:
        run_id = _full_run_id(store, args.run_id)
        progress = ProgressLine(sys.stderr)
        try:
            result = audit_run(store, run_id, settings, progress=progress)
        finally:
            progress.close()
    if args.json:
        print(json.dumps({"summary": result.summary(), "path": str(result.path), **result.payload()}, indent=1,
                         ensure_ascii=False))
    else:
        print("\n".join(report_lines(result)))
    return 0
