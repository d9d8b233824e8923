"""What the app shows about one recorded run, asked of core instead of read from folders and JSON:
its config snapshot, how many steps it was to train, its whole checkpoints, whether it can be
resumed, its saved adapter, and its recorded metric curves."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig

RESUMABLE = ("interrupted", "cancelled", "failed")  # ended early; a checkpoint lets them go on
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class RunInfo:
    row: dict  # the store's runs row
    config: RunConfig | None  # None when the snapshot no longer reads (a method since removed, …)
    checkpoints: tuple[Path, ...] = ()  # whole checkpoints, oldest first
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
        return self.status in RESUMABLE and bool(self.checkpoints)


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
    """The run with its whole checkpoints and its final adapter."""
    # checkpoint.py imports torch: only here, so that the app reads a run's record and curves
    # before torch has loaded (it takes seconds at start-up; bench/bench_startup.py).
    from unlearn_studio.core.run.checkpoint import ADAPTER, CHECKPOINTS, complete_checkpoints

    recorded = recorded_run(store, run_id)
    row = recorded.row
    folder = Path(row["output_dir"]) if row["output_dir"] else None
    checkpoints = tuple(complete_checkpoints(folder / CHECKPOINTS)) if folder is not None else ()
    adapter = folder / ADAPTER if folder is not None else None
    if adapter is not None and not (adapter / ADAPTER_CONFIG).is_file():
        adapter = None
    return RunInfo(row, recorded.config, checkpoints, adapter)


def run_curves(store, run_id: str) -> RunCurves:
    curves = RunCurves()
    for key, step, value in store.metrics(run_id):
        if value is None:
            continue
        steps, values = curves.series.setdefault(key, (array("d"), array("d")))
        steps.append(step)
        values.append(value)
    return curves
