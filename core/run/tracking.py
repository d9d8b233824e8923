"""Experiment tracking through accelerate's trackers, beside the project store.

Every step's numbers (the loss terms, learning rate, gradient norm, tokens/s, memory and the
method's own values) also go to
- TensorBoard when it is installed and ``tracking.tensorboard`` is on (the default): event files
  in ``<run>/logs/tensorboard``, written offline;
- Weights & Biases when ``tracking.wandb`` is on: offline into ``<run>/logs`` unless WANDB_MODE
  says otherwise (``wandb sync`` uploads it later), one W&B run per app run (its id);
- MLflow when ``tracking.mlflow`` is on: into ``<run>/logs/mlflow`` unless MLFLOW_TRACKING_URI
  names a server.
The run's configuration is stored with them as flat "table.key" values. Only the main process
tracks. A tracker the project turns on but that is not installed is refused before anything is
written; TensorBoard missing only costs its curves, and the run's log says how to get them.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker, WandBTracker

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig

LOGS = "logs"
INSTALL = {"tensorboard": "pip install 'unlearn-studio[tensorboard]'", "wandb": "pip install wandb",
           "mlflow": "pip install mlflow"}


def installed(tracker: str) -> bool:
    return importlib.util.find_spec(tracker) is not None


def check_trackers(config: RunConfig) -> None:
    """UserError when the project turns on a tracker that is not installed (before anything is written)."""
    for name in ("wandb", "mlflow"):
        if getattr(config.tracking, name) and not installed(name):
            raise UserError(f"tracking.{name} is on, but {name} is not installed",
                            f"Install it ({INSTALL[name]}), or set tracking.{name} = false.")


def flat_config(config: RunConfig) -> dict[str, Any]:
    """The configuration as "table.key" -> a number, string or boolean (what every tracker stores)."""
    out: dict[str, Any] = {}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)

    walk(config.to_dict(), "")
    return out


@dataclass
class RunTrackers:
    """The trackers of one run (none on the processes that are not the main one)."""

    trackers: list[GeneralTracker] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what the run's log says about them

    def log(self, step: int, values: dict[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def finish(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def _tensorboard(logs: Path, run_id: str) -> tuple[GeneralTracker, str]:
    tracker = TensorBoardTracker("tensorboard", logs)
    return tracker, (f"TensorBoard curves in {logs / 'tensorboard'}; to open them: tensorboard --logdir "
                     f"\"{logs}\" (then http://localhost:6006)")


def _wandb(logs: Path, run_id: str, project: str) -> tuple[GeneralTracker, str]:
    mode = os.environ.get("WANDB_MODE", "offline")
    tracker = WandBTracker(project, dir=str(logs), id=run_id, name=run_id, resume="allow", mode=mode)
    where = (f"offline in {logs / 'wandb'}; to upload: wandb sync \"{logs / 'wandb'}\"" if mode == "offline"
             else f"mode {mode}")
    return tracker, f"Weights & Biases run {run_id} of project '{project}', {where}"


def _mlflow(logs: Path, run_id: str, project: str) -> tuple[GeneralTracker, str]:
    import mlflow  # an optional package: imported only when tracking.mlflow is on (check_trackers found it)

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None:
        uri = (logs / "mlflow").as_uri()
        mlflow.set_tracking_uri(uri)
    tracker = MLflowTracker(experiment_name=project, logging_dir=str(logs / "mlflow"), run_name=run_id)
    return tracker, f"MLflow run {run_id} of experiment '{project}' at {uri}; to open it: mlflow ui --backend-store-uri {uri}"


def start_trackers(config: RunConfig, run_dir: Path, run_id: str, *, main_process: bool = True,
                   log: Callable[[str, str], None] | None = None) -> RunTrackers:
    """Start the project's trackers for the run in ``run_dir`` and store its configuration with
    them; ``log`` gets one line per tracker saying where its records are and how to open them."""
    result = RunTrackers()
    if not main_process:
        return result
    logs = Path(run_dir) / LOGS
    chosen: list[tuple[GeneralTracker, str]] = []
    if config.tracking.tensorboard:
        if installed("tensorboard"):
            chosen.append(_tensorboard(logs, run_id))
        else:
            result.lines.append(f"TensorBoard is not installed, so the curves are only in the app ({INSTALL['tensorboard']} "
                                "to get them for TensorBoard too)")
    if config.tracking.wandb:
        chosen.append(_wandb(logs, run_id, config.name))
    if config.tracking.mlflow:
        chosen.append(_mlflow(logs, run_id, config.name))
    if chosen:
        logs.mkdir(parents=True, exist_ok=True)
    values = flat_config(config)
    for tracker, line in chosen:
        tracker.start()
        tracker.store_init_configuration(values)
        result.trackers.append(tracker)
        result.lines.append(line)
    if log is not None:
        for line in result.lines:
            log("info", line)
    return result
