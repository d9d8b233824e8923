"""``[tracking]``: where a run's training curves go besides the project store (core/run/tracking.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackingConfig:
    """TensorBoard (a folder in the run, offline) when it is installed; Weights & Biases and
    MLflow only when the project turns them on (offline by default too: files in the run folder)."""

    tensorboard: bool = True
    wandb: bool = False
    mlflow: bool = False
