"""The record every run keeps, whatever its recipe: its row in the project store, its output folder
(with the app's marker and a snapshot of its configuration), its events, its buffered metrics, and
how it ended (finished, stopped, cancelled, failed or interrupted).

A run's record starts only once every check has passed (``runner`` prepares first), so bad input
never leaves a row or a folder behind. Under ``accelerate launch`` only the main process writes
(store, files, events); the others keep the same run id.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_studio.core.events import (
    Event,
    EventBatcher,
    FailedEvent,
    FinishedEvent,
    Listener,
    LogEvent,
    StatusEvent,
)
from unlearn_studio.core.files import check_output_folder, mark_as_own, own_kind
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.failures import SaveError, failure_record
from unlearn_studio.core.run.tracking import RunTrackers, start_trackers

# Store writes are batched, and every checkpoint flushes them: a crash loses at most the metrics of
# the steps after the last checkpoint (or this many), which a resume from it trains again.
METRICS_FLUSH_STEPS = 20
CONFIG_FILE = "config.toml"


@dataclass
class RunResult:
    """How a run ended. ``adapter_dir`` is set for "finished" and "stopped"."""

    run_id: str
    status: str  # "finished" | "stopped" | "cancelled" | "failed"
    adapter_dir: Path | None
    steps: int
    output_dir: Path | None
    error: str | None = None
    evaluations: dict[str, Any] = field(default_factory=dict)  # phase -> the evaluation's result


def default_project_file(config: RunConfig) -> Path:
    """Where the project's TOML file is taken to be when the caller names no project."""
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in config.name.strip()).strip("-") or "project"
    return (config.base_dir or Path.cwd()) / f"{slug}.toml"


def write_config_snapshot(folder: Path, run_id: str, config: RunConfig) -> None:
    """``config.toml`` in the run's folder, written whole or not at all."""
    base = config.base_dir or Path.cwd()
    header = f"# The configuration of run {run_id}; relative paths are relative to {base}\n"
    path = folder / CONFIG_FILE
    partial = folder / f".{CONFIG_FILE}.partial"
    try:
        partial.write_text(header + config.to_toml(), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SaveError(f"the configuration of run {run_id}", path, exc) from exc


class RunRecord:
    """One run's record. ``start`` (a new run) or ``take_up`` (a resumed one) opens it; then events,
    metrics, and one of the endings."""

    def __init__(self, config: RunConfig, store, listener: Listener | None, *, main_process: bool = True,
                 broadcast: Callable[[Any], Any] = lambda value: value):
        self.config = config
        self.main_process = main_process
        self.store = store if main_process else None
        self.broadcast = broadcast
        self.batcher: EventBatcher | None = None
        if listener is not None and main_process:
            def deliver(events: list[Event]) -> None:
                for event in events:
                    listener(event)

            self.batcher = EventBatcher(deliver)
        self.run_id = ""
        self.output_dir: Path | None = None
        self.pending_metrics: list[tuple[int, dict[str, float]]] = []
        # A resumed run trains the steps after its checkpoint again: their earlier metrics are
        # replaced, in the same transaction, by the first ones it logs (none are lost before that).
        self.replace_metrics_after: int | None = None
        self.trackers = RunTrackers()  # TensorBoard and friends, once the run has its folder

    def start_tracking(self) -> None:
        """Every step's numbers also to the project's trackers (tracking.py), in the run's folder."""
        self.trackers = start_trackers(self.config, self.output_dir, self.run_id, main_process=self.main_process,
                                       log=self.log)

    # ---- opening ----------------------------------------------------------------------------------

    def start(self, *, project_id: int | None = None, project_file: str | os.PathLike | None = None) -> None:
        """A new run: its store row (and the project's, if the project is new) and its folder."""
        root = self.config.resolve_path(self.config.output.dir)
        run_id = ""
        if self.store is not None:
            if project_id is None:
                project_file = project_file if project_file is not None else default_project_file(self.config)
                project_id = self.store.ensure_project(self.config.name, project_file)
            run_id = self.store.start_run(project_id, self.config, root)
        elif self.main_process:
            run_id = uuid.uuid4().hex
        self.run_id = self.broadcast(run_id)
        self.output_dir = root / self.run_id
        if self.store is not None:
            self.store.set_output_dir(self.run_id, self.output_dir)
        if self.main_process:
            folder = check_output_folder(self.output_dir, what="run")
            folder.mkdir(parents=True, exist_ok=True)
            mark_as_own(folder, "run", run_id=self.run_id)
            write_config_snapshot(folder, self.run_id, self.config)

    def take_up(self, run_id: str, output_dir: Path, *, replace_metrics_after: int | None,
                config_changed: bool = False) -> None:
        """A resumed run: the same row and folder; a changed configuration replaces the snapshots."""
        self.run_id, self.output_dir = run_id, Path(output_dir)
        self.replace_metrics_after = replace_metrics_after
        if self.store is not None:
            if config_changed:
                self.store.set_run_config(run_id, self.config)
            self.store.set_status(run_id, "running")
        if self.main_process:
            if own_kind(self.output_dir) is None:  # a run folder from before the app marked its folders
                mark_as_own(self.output_dir, "run", run_id=run_id)
            if config_changed:
                write_config_snapshot(self.output_dir, run_id, self.config)

    # ---- events -----------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if self.batcher is not None:
            self.batcher(event)

    def status(self, status: str, message: str = "", *, step: int = 0, store_status: str | None = None) -> None:
        self.emit(StatusEvent(self.run_id, status, message, step))
        if store_status and self.store is not None:
            self.store.set_status(self.run_id, store_status)

    def log(self, level: str, message: str) -> None:
        self.emit(LogEvent(self.run_id, level, message))

    def close(self) -> None:
        """Close the trackers and deliver what the batcher still holds."""
        self.trackers.finish()
        if self.batcher is not None:
            self.batcher.flush()

    # ---- metrics ----------------------------------------------------------------------------------

    def add_metrics(self, step: int, values: dict[str, float]) -> None:
        self.trackers.log(step, values)
        if self.store is None:
            return
        self.pending_metrics.append((step, values))
        if len(self.pending_metrics) >= METRICS_FLUSH_STEPS:
            self.flush_metrics()

    def flush_metrics(self) -> None:
        if self.store is not None and self.pending_metrics:
            self.store.log_metrics_batch(self.run_id, self.pending_metrics,
                                         replace_after=self.replace_metrics_after)
            self.replace_metrics_after = None
        self.pending_metrics = []

    # ---- endings ----------------------------------------------------------------------------------

    def finished(self, status: str, adapter: Path, steps: int) -> RunResult:
        """Ended with a usable adapter: "finished", or "stopped" (stop and save)."""
        self.flush_metrics()
        if self.store is not None:
            self.store.set_status(self.run_id, status)
        self.emit(FinishedEvent(self.run_id, status, str(adapter), steps))
        return RunResult(self.run_id, status, adapter, steps, self.output_dir)

    def cancelled(self, steps: int, message: str, fix: str) -> RunResult:
        self.flush_metrics()
        if self.store is not None:
            self.store.set_status(self.run_id, "cancelled", error=message)
        self.emit(FailedEvent(self.run_id, "cancelled", message, fix))
        return RunResult(self.run_id, "cancelled", None, steps, self.output_dir, message)

    def failed(self, steps: int, message: str, fix: str, trace: str = "") -> RunResult:
        self.flush_metrics_if_possible()
        if self.store is not None:
            try:
                self.store.set_status(self.run_id, "failed", error=failure_record(message, fix, trace))
            except (sqlite3.Error, OSError) as exc:  # a full disk: the failure is still told
                message += f" (the project store could not record this: {exc})"
        self.emit(FailedEvent(self.run_id, "failed", message, fix, trace))
        return RunResult(self.run_id, "failed", None, steps, self.output_dir, message)

    def interrupted(self, steps: int) -> None:
        """KeyboardInterrupt or SystemExit: say so in the store; the caller lets it go on up."""
        self.flush_metrics_if_possible()
        if self.store is not None:
            self.store.set_status(self.run_id, "interrupted", error=f"Interrupted at step {steps}")

    def flush_metrics_if_possible(self) -> None:
        """Flush on the way out of a failure; a store that cannot take them (a full disk) must not
        hide the failure itself, and the steps' metrics are then the only thing lost."""
        try:
            self.flush_metrics()
        except Exception as exc:  # noqa: BLE001 - reported, and the run's own failure goes on
            self.pending_metrics = []
            self.log("warning", f"The metrics of the last steps could not be stored: {exc}")
