"""Quitting during a run cancels it and leaves everything complete; the next window offers to
resume it from its last checkpoint, and it goes on under the same id."""

from __future__ import annotations

import gc

import pytest

from unlearn_studio.gui.main_window import MainWindow
from unlearn_studio.gui.startup import open_store

WAIT_MS = 300_000


@pytest.mark.slow
def test_quitting_during_a_run_cancels_it_and_the_run_resumes_later(qtbot, tmp_path, start_short_run,
                                                                     wait_for_status, screenshots):
    store, _ = open_store(str(tmp_path / "store.db"))
    first = MainWindow(store)
    qtbot.addWidget(first)
    first.show()
    project, session = start_short_run(first, steps=2000, suite="none", checkpoint_every=2)
    before = project.read_bytes()
    qtbot.waitUntil(lambda: any(p.name.startswith("step-") for p in (tmp_path / "runs").glob("*/checkpoints/*")),
                    timeout=WAIT_MS)
    first.close()  # cancels the run and joins it
    run = store.run(session.run_id)
    assert run["status"] == "cancelled"
    assert gc.get_freeze_count() == 0  # the objects frozen while it trained are collectable again
    assert project.read_bytes() == before

    second = MainWindow(store)
    qtbot.addWidget(second)
    second.show()
    assert second.open_project(project)
    second.runs.table.select_runs([session.run_id])
    monitor = second.runs.monitor
    # The record and curves come first, the checkpoints (which say it can resume) right after.
    qtbot.waitUntil(lambda: monitor.curve_points("loss/total") >= 2 and second.runs.info is not None, timeout=WAIT_MS)
    assert monitor.resume_button.isVisible() and second.menu_actions.resume.isEnabled()
    assert monitor.curve_points("loss/total") >= 2  # the recorded curves of the cancelled run
    last_step = int(max(monitor.curves["loss/total"].getOriginalDataset()[0]))
    assert monitor.status.text() == f"Cancelled at step {last_step}"  # a step number, not "3.0"
    screenshots(second, "monitor_offers_resume")
    with qtbot.waitSignal(second.run_started, timeout=WAIT_MS) as started:
        monitor.resume_button.click()
    resumed = started.args[0]
    with wait_for_status(resumed, "resumed"):
        pass
    assert resumed.run_id == session.run_id
    with qtbot.waitSignal(resumed.ended, timeout=WAIT_MS) as ended:
        second.manager.stop_run()
    assert ended.args[0].status == "stopped" and ended.args[0].run_id == session.run_id
    second.close()
    store.close()


def test_the_run_the_last_session_left_unfinished_is_offered_for_resuming(qtbot, tmp_path, short_project,
                                                                          monkeypatch):
    """A run still "running" when the app was killed is marked interrupted by the next writer; the
    next window offers to go on with it from its last checkpoint."""
    from unlearn_studio.core.files import mark_as_own
    from unlearn_studio.core.project.config import RunConfig
    from unlearn_studio.core.project.store import Store

    project = short_project()
    config = RunConfig.load(project)
    with Store.open(tmp_path / "store.db") as killed:  # what a killed session leaves behind
        run_id = killed.start_run(killed.ensure_project(config.name, project), config, tmp_path / "runs" / "r")
        checkpoint = tmp_path / "runs" / "r" / "checkpoints" / "step-000004"
        checkpoint.mkdir(parents=True)
        (checkpoint / "state.json").write_text('{"step": 4}')
        mark_as_own(checkpoint, "checkpoint")
    store, _ = open_store(str(tmp_path / "store.db"))
    assert store.run(run_id)["status"] == "interrupted"
    resumed = []
    window = MainWindow(store)
    qtbot.addWidget(window)
    monkeypatch.setattr(window.manager, "resume_run", lambda run_id: resumed.append(run_id))
    qtbot.waitUntil(lambda: window.manager.last_session_box is not None, timeout=WAIT_MS)
    box = window.manager.last_session_box
    assert "Short GradDiff" in box.text() and "step 4" in box.text()
    resume = next(b for b in box.buttons() if b.text() == "Resume it")
    resume.click()
    assert resumed == [run_id] and window.page.project_path == project
    window.close()
    store.close()
