"""`unlearn-studio run PROJECT.toml`: train a project headless, with a progress line per step.

Ctrl-C stops the run and saves the adapter and a checkpoint; a second Ctrl-C cancels it. Both take
effect between forward passes. ``--json`` prints one JSON document on stdout when the run ends
(status, run id, folders, the evaluation's judgement) and the progress on stderr.
Exit status: 0 finished or stopped, 1 failed or cancelled, 2 bad input (nothing was written),
130 interrupted before the run started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from unlearn_studio.core.control import RunControl
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import (
    EvaluationEvent,
    EvaluationProgressEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    StatusEvent,
    StepEvent,
)
from unlearn_studio.core.project.config import RunConfig

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's convention for a program ended by SIGINT


def add_parser(subparsers) -> None:
    run_parser = subparsers.add_parser(
        "run", help="train a project headless (Ctrl-C stops and saves; twice cancels)")
    run_parser.add_argument("project", type=Path, help="the project's TOML file")
    run_parser.add_argument("--store", help="record the run in this project store (default: no store)")
    run_parser.add_argument("--resume", type=Path, metavar="DIR",
                            help="continue a run: its output folder (newest checkpoint) or a checkpoint folder")
    run_parser.add_argument("--json", action="store_true",
                            help="print one JSON document on stdout at the end (progress goes to stderr)")
    run_parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.json:
        return train(args, sys.stdout)
    try:
        return train(args, sys.stderr)
    except UserError as error:
        _print_json({"status": "refused", "project": str(args.project), "problem": error.problem, "fix": error.fix})
        return EXIT_BAD_INPUT


def train(args: argparse.Namespace, out: TextIO) -> int:
    """Run the project, progress to ``out``; the exit status (UserError for bad input)."""
    # The run machinery imports torch and transformers (about 6 s on a busy 2-core machine), which
    # `unlearn-studio --help` and the other commands' parsers must not wait for.
    from unlearn_studio.core.evaluation.table import format_judgement
    from unlearn_studio.core.evaluation.verdicts import judge
    from unlearn_studio.core.run.history import resume_point
    from unlearn_studio.core.run.start import start_run

    config = RunConfig.load(args.project)
    main_process = int(os.environ.get("RANK", "0")) == 0
    control = RunControl()
    progress = Progress(out)
    try:
        with _ctrl_c_stops(control, started=lambda: progress.started):
            # Under `accelerate launch` only the main process (RANK 0) records anything; the store
            # is locked by one process, so the others must not open it.
            if args.store and main_process:
                # sqlite-utils (and pandas with it) take about 1 s to import: only with --store.
                from unlearn_studio.core.project.store import Store

                with Store.open(args.store) as store:
                    # The project is registered when the run starts: a refused run adds no row.
                    result = start_run(config, store=store, project_file=args.project.resolve(), listener=progress,
                                       control=control, resume=args.resume)
            else:
                result = start_run(config, listener=progress, control=control, resume=args.resume)
    except KeyboardInterrupt:
        progress.close()
        print("Interrupted before the run started; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.close()
    ok = result.status in ("finished", "stopped")
    if not main_process:
        return 0 if ok else EXIT_FAILED
    judgement = None
    if {"before", "after"} <= set(result.evaluations):
        judgement = judge(result.evaluations["before"], result.evaluations["after"])
    point = resume_point({"id": result.run_id, "status": result.status, "output_dir": result.output_dir})
    resume = (f"unlearn-studio run {args.project}" + (f" --store {args.store}" if args.store else "")
              + f" --resume {point.folder}") if point is not None and not ok else None
    if args.json:
        _print_json({"status": result.status, "run_id": result.run_id, "steps": result.steps,
                     "project": str(args.project.resolve()), "store": str(Path(args.store).resolve()) if args.store else None,
                     "output_dir": _path(result.output_dir), "adapter_dir": _path(result.adapter_dir),
                     "error": result.error, "resume": resume,
                     "evaluation": {"suite": config.evaluation.suite,
                                    "phases": {phase: _numbers(getattr(value, "aggregates", value))
                                               for phase, value in result.evaluations.items()},
                                    "judgement": judgement.to_dict() if judgement is not None else None}})
        return 0 if ok else EXIT_FAILED
    if ok:
        print(f"Run {result.run_id} {result.status} after {result.steps} steps; adapter: {result.adapter_dir}")
        if judgement is not None:
            print(f"\nBefore / after ({config.evaluation.suite} suite; every metric and per-item results in "
                  f"{result.output_dir / 'evaluation'}):")
            print(format_judgement(judgement))
        return 0
    print(f"Run {result.run_id or '(not started)'} {result.status} at step {result.steps}; output: "
          f"{result.output_dir or 'none'}", file=sys.stderr)
    if resume is not None:
        print(f"To go on from step {point.step}: {resume}", file=sys.stderr)
    return EXIT_FAILED


def _path(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _numbers(values: dict | None) -> dict:
    """Aggregates as JSON numbers (NaN and the infinities, which JSON lacks, as strings)."""
    return {key: value if math.isfinite(value) else str(value) for key, value in (values or {}).items()}


def _print_json(document: dict) -> None:
    print(json.dumps(document, indent=2, allow_nan=False))


@contextlib.contextmanager
def _ctrl_c_stops(control: RunControl, started: Callable[[], bool]):
    """While inside: once the run has ``started``, the first Ctrl-C asks to stop and save and the
    next one cancels; before that (loading), Ctrl-C interrupts as usual, with nothing written."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    presses = 0

    def on_sigint(signum, frame) -> None:
        nonlocal presses
        if not started():
            # Python drops an exception raised inside a weakref callback or __del__; the
            # cancel makes sure the run then ends at its first step check anyway.
            control.cancel()
            raise KeyboardInterrupt
        presses += 1
        if presses == 1:
            print("\nStopping after this step and saving the adapter (Ctrl-C again to cancel)...",
                  file=sys.stderr, flush=True)
            control.stop_and_save()
        else:
            print("\nCancelling...", file=sys.stderr, flush=True)
            control.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def format_step(event: StepEvent) -> str:
    """One progress line: step, losses, learning rate, speed, time left."""
    width = len(str(event.total_steps))
    losses = "  ".join(f"{name} {value:.4f}" for name, value in event.losses.items())
    eta = f"  eta {_duration(event.eta_s)}" if event.eta_s is not None else ""
    return (f"step {event.step:>{width}}/{event.total_steps}  epoch {event.epoch:.2f}  {losses}  "
            f"lr {event.lr:.2e}  {event.tokens_per_s:,.0f} tok/s{eta}")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Prints events as plain text: on a terminal one step line rewritten in place; otherwise one
    line per tenth of the run (and the last step), so that logs stay short."""

    def __init__(self, out: TextIO):
        self.out = out
        self.tty = out.isatty()
        self.open_line = False  # a \r line is on screen and needs a newline before other text
        self.printed_tenth = -1
        self.started = False  # an event has come: the run exists

    def __call__(self, event: Event) -> None:
        self.started = True
        if isinstance(event, StepEvent):
            self.step(event)
            return
        if isinstance(event, StatusEvent):
            text = f"[{event.status}] {event.message}".rstrip()
        elif isinstance(event, LogEvent):
            text = f"{event.level}: {event.message}"
        elif isinstance(event, EvaluationEvent):
            text = f"evaluation {event.phase} training: {len(event.aggregates)} metrics ({event.suite} suite)"
        elif isinstance(event, EvaluationProgressEvent):
            self.evaluation(event)
            return
        elif isinstance(event, FinishedEvent):
            text = f"[{event.status}] {event.steps} steps, adapter in {event.adapter_dir}"
        elif isinstance(event, FailedEvent):
            text = f"[{event.status}] {event.message}"
            if event.fix:
                text += f"\n  What to do: {event.fix}"
            if event.traceback:
                text += f"\n{event.traceback.rstrip()}"
        else:
            return
        self.line(text)

    def step(self, event: StepEvent) -> None:
        text = format_step(event)
        if self.tty:
            self.out.write("\r" + text + "\033[K")
            self.out.flush()
            self.open_line = True
            return
        tenth = event.step * 10 // event.total_steps
        if tenth > self.printed_tenth or event.step == event.total_steps:
            self.printed_tenth = tenth
            self.out.write(text + "\n")
            self.out.flush()

    def evaluation(self, event: EvaluationProgressEvent) -> None:
        """On a terminal, one line rewritten in place; elsewhere nothing (the log stays short)."""
        if not self.tty:
            return
        eta = f"  eta {_duration(event.eta_s)}" if event.eta_s is not None else ""
        self.out.write(f"\revaluating {event.phase}: {event.set_name} {event.done}/{event.total}{eta}\033[K")
        self.out.flush()
        self.open_line = True

    def line(self, text: str) -> None:
        self.close()
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.open_line:
            self.out.write("\n")
            self.open_line = False
