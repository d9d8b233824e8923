"""What the app asks before it offers to resume: which runs can be resumed and from which step, the
run the last session left interrupted (with its project), and a run's whole metric history. The
runs here are store rows and folders laid out as the runner leaves them; nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.run.checkpoint import STATE_FILE, checkpoint_name
from unlearn_studio.core.run.history import last_session_interrupted, resumable_runs, resume_point
from unlearn_studio.core.run.staged_run import STAGES_FILE


def checkpoint(run_dir: Path, step: int) -> Path:
    folder = run_dir / "checkpoints" / checkpoint_name(step)
    folder.mkdir(parents=True)
    (folder / STATE_FILE).write_text(json.dumps({"step": step, "run_id": run_dir.name, "streams": {}}))
    return folder


def row(run_id: str, status: str, folder: Path) -> dict:
    return {"id": run_id, "status": status, "output_dir": str(folder)}


@pytest.mark.parametrize("status", ["interrupted", "cancelled", "failed", "stopped"])
def test_a_run_that_ended_unfinished_resumes_from_its_newest_checkpoint(tmp_path, status):
    checkpoint(tmp_path / "r", 10)
    newest = checkpoint(tmp_path / "r", 20)
    point = resume_point(row("r", status, tmp_path / "r"))
    assert (point.folder, point.step, point.checkpoint) == (tmp_path / "r", 20, newest)


def test_a_finished_or_running_run_is_not_offered(tmp_path):
    checkpoint(tmp_path / "r", 10)
    assert resume_point(row("r", "finished", tmp_path / "r")) is None
    assert resume_point(row("r", "running", tmp_path / "r")) is None


def test_a_run_without_a_whole_checkpoint_is_not_offered(tmp_path):
    half = tmp_path / "r" / "checkpoints" / checkpoint_name(5)
    half.mkdir(parents=True)  # no state.json: a write that never finished
    assert resume_point(row("r", "cancelled", tmp_path / "r")) is None


def test_a_staged_run_resumes_after_its_finished_stages_and_its_stage_checkpoint(tmp_path):
    run_dir = tmp_path / "extsub"
    expert, anti = run_dir / "stages" / "e", run_dir / "stages" / "a"
    checkpoint(anti, 2)
    run_dir.mkdir(exist_ok=True)
    (run_dir / STAGES_FILE).write_text(json.dumps({"run_id": "extsub", "stages": {
        "expert": {"status": "finished", "steps": 4, "output_dir": str(expert)},
        "anti-expert": {"status": "cancelled", "steps": 3, "output_dir": str(anti)}}}))
    point = resume_point(row("extsub", "cancelled", run_dir))
    assert (point.folder, point.step, point.checkpoint) == (run_dir, 4 + 2, anti / "checkpoints" / "step-000002")


def test_a_staged_run_with_nothing_trained_is_not_offered(tmp_path):
    run_dir = tmp_path / "extsub"
    run_dir.mkdir()
    (run_dir / STAGES_FILE).write_text(json.dumps({"run_id": "extsub", "stages": {
        "expert": {"status": "cancelled", "steps": 1, "output_dir": str(run_dir / "stages" / "e")}}}))
    assert resume_point(row("extsub", "cancelled", run_dir)) is None


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "store.db") as opened:
        yield opened


def start(store: Store, project_id: int, folder: Path, name: str = "p") -> str:
    run_id = store.start_run(project_id, RunConfig(name=name), folder)
    store.set_output_dir(run_id, folder / run_id)
    return run_id


def test_resumable_runs_lists_a_projects_runs_that_can_go_on(store, tmp_path):
    project = store.create_project("p", tmp_path / "p.toml")
    kept, gone, done = (start(store, project, tmp_path) for _ in range(3))
    for run_id, status in ((kept, "cancelled"), (gone, "cancelled"), (done, "finished")):
        checkpoint(tmp_path / run_id, 3) if run_id != gone else None
        store.set_status(run_id, status)
    assert [point.run_id for point in resumable_runs(store, project)] == [kept]


def test_the_last_sessions_interrupted_run_comes_with_its_project(tmp_path):
    with Store.open(tmp_path / "store.db") as store:
        other = store.create_project("same name", tmp_path / "elsewhere" / "p.toml")
        mine = store.create_project("same name", tmp_path / "p.toml")
        earlier = start(store, other, tmp_path)
        store.set_status(earlier, "finished")
        running = start(store, mine, tmp_path)
        checkpoint(tmp_path / running, 7)
    # The app was killed while the run trained; the next session's store marks it interrupted.
    with Store.open(tmp_path / "store.db") as store:
        assert store.interrupted == [running]
        found = last_session_interrupted(store)
    assert found.run["id"] == running and found.project["path"] == str(tmp_path / "p.toml")
    assert (found.resume.step, found.resume.folder) == (7, tmp_path / running)


def test_an_interrupted_stage_points_at_its_staged_run(tmp_path):
    with Store.open(tmp_path / "store.db") as store:
        project = store.create_project("p", tmp_path / "p.toml")
        parent = start(store, project, tmp_path)
        child = store.start_run(project, RunConfig(name="p [expert]"), tmp_path / parent / "stages")
        store.set_output_dir(child, tmp_path / parent / "stages" / child)
    with Store.open(tmp_path / "store.db") as store:
        assert last_session_interrupted(store).run["id"] == parent


def test_no_interrupted_run_when_the_last_run_ended(store, tmp_path):
    project = store.create_project("p", tmp_path / "p.toml")
    store.set_status(start(store, project, tmp_path), "interrupted")
    store.set_status(start(store, project, tmp_path), "finished")
    assert last_session_interrupted(store) is None


def test_the_metric_history_of_a_run_holds_every_session_in_step_order(store, tmp_path):
    project = store.create_project("p", tmp_path / "p.toml")
    run_id = start(store, project, tmp_path)
    store.log_metrics_batch(run_id, [(1, {"loss/total": 3.0}), (2, {"loss/total": 2.0}), (3, {"loss/total": 9.0})])
    store.log_metrics_batch(run_id, [(3, {"loss/total": 1.5}), (4, {"loss/total": 1.0})], replace_after=2)
    assert store.metric_history(run_id) == {"loss/total": [(1, 3.0), (2, 2.0), (3, 1.5), (4, 1.0)]}
    assert store.metric_history(run_id, through_step=2) == {"loss/total": [(1, 3.0), (2, 2.0)]}
