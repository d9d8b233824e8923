"""What the app shows about one recorded run, asked of core instead of read from folders and JSON:
its config snapshot, how many steps it was to train, where it can be resumed from
(core/run/history.py), its saved adapter, and its recorded metric curves."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig

if TYPE_CHECKING:
    from unlearn_studio.core.run.history import ResumePoint

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class RunInfo:
    row: dict  # the store's runs row
    config: RunConfig | None  # None when the snapshot no longer reads (a method since removed, …)
    resume: ResumePoint | None = None  # where it can go on from, when it can
    adapter_dir: Path | None = None  # the final adapter, when the run saved one

    @property
    def run_id(self) -> str:
        return self.row["id"]

    @property
    def status(self) -> str:
        return self.row["status"]

    @property
    def total_steps(self) -> int | None:
        """The steps the run was set to train (None for a run set by epochs)."""
        return self.config.training.max_steps if self.config is not None else None

    @property
    def resumable(self) -> bool:
        return self.resume is not None


@dataclass
class RunCurves:
    """A run's recorded values per key, as growing arrays of steps and values (NaN kept, None left out)."""

    series: dict[str, tuple[array, array]] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        return int(max((steps[-1] for steps, _ in self.series.values() if steps), default=0))


def recorded_run(store, run_id: str) -> RunInfo:
    """What the store says about the run (its files are not looked at: no checkpoints, no adapter)."""
    row = store.run(run_id)
    try:
        config = store.run_config(run_id)
    except UserError:
        config = None
    return RunInfo(row, config)


def run_info(store, run_id: str) -> RunInfo:
    """The run with where it resumes from and its final adapter."""
    # The run's files are read by modules that import torch: only here, so that the app reads a
    # run's record and curves before torch has loaded (seconds at start-up; bench/bench_startup.py).
    from unlearn_studio.core.run.checkpoint import ADAPTER
    from unlearn_studio.core.run.history import resume_point

    recorded = recorded_run(store, run_id)
    row = recorded.row
    adapter = Path(row["output_dir"]) / ADAPTER if row["output_dir"] else None
    if adapter is not None and not (adapter / ADAPTER_CONFIG).is_file():
        adapter = None
    return RunInfo(row, recorded.config, resume_point(row), adapter)


def run_curves(store, run_id: str) -> RunCurves:
    curves = RunCurves()
    for key, step, value in store.metrics(run_id):
        if value is None:
            continue
        steps, values = curves.series.setdefault(key, (array("d"), array("d")))
        steps.append(step)
        values.append(value)
    return curves
