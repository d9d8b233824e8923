"""What the app asks core about a recorded run: config, steps, checkpoints, resumability, curves."""

import math

from unlearn_studio.core.files import mark_as_own
from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.results.run_info import run_curves, run_info


def recorded(store: Store, folder, status: str) -> str:
    config = RunConfig.load(demo_project())
    run_id = store.start_run(store.ensure_project(config.name, demo_project()), config, folder)
    store.set_status(run_id, status)
    return run_id


def test_a_cancelled_run_with_a_whole_checkpoint_can_resume(tmp_path):
    with Store.open(tmp_path / "store.db") as store:
        run_id = recorded(store, tmp_path / "run", "cancelled")
        info = run_info(store, run_id)
        assert info.total_steps == RunConfig.load(demo_project()).training.max_steps
        assert info.resume is None and not info.resumable and info.adapter_dir is None
        half = tmp_path / "run" / "checkpoints" / "step-000004"
        half.mkdir(parents=True)  # no state.json: an interrupted write, never used
        whole = tmp_path / "run" / "checkpoints" / "step-000002"
        whole.mkdir()
        (whole / "state.json").write_text("{}")
        mark_as_own(whole, "checkpoint")
        info = run_info(store, run_id)
        assert info.resumable and info.resume.checkpoint == whole and info.resume.step == 2
        store.set_status(run_id, "finished")
        assert not run_info(store, run_id).resumable  # a finished run has nothing to resume


def test_curves_keep_nan_and_leave_out_missing_values(tmp_path):
    with Store.open(tmp_path / "store.db") as store:
        run_id = recorded(store, tmp_path / "run", "running")
        store.log_metrics(run_id, 1, {"loss/total": 1.5, "lr": None})
        store.log_metrics(run_id, 2, {"loss/total": math.nan, "lr": 1e-3})
        curves = run_curves(store, run_id)
        steps, values = curves.series["loss/total"]
        assert list(steps) == [1, 2] and values[0] == 1.5 and math.isnan(values[1])
        assert list(curves.series["lr"][0]) == [2] and curves.last_step == 2
