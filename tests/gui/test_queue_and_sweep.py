"""Several runs one after another (the queue), and a sweep started from the app whose frontier
fills in as each of its runs is evaluated."""

from __future__ import annotations

from datetime import datetime

import pytest

from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.sweep_dialog import SweepDialog

WAIT_MS = 300_000


@pytest.mark.slow
def test_a_run_asked_for_while_another_trains_waits_in_the_queue_then_starts(qtbot, window, start_short_run,
                                                                             short_project, screenshots):
    _project, first = start_short_run(window, steps=30, suite="none")
    other = short_project("other.toml", name="Second GradDiff", steps=3, suite="none")
    assert window.manager.start_run(RunConfig.load(other), project_path=other) is None  # queued, not started
    assert len(window.queue) == 1 and window.runs.queue_box.isVisibleTo(window.runs)
    assert window.runs.queue_list.item(0).text().startswith("Second GradDiff")
    screenshots(window, "runs_queue")
    with qtbot.waitSignal(window.run_started, timeout=WAIT_MS) as started:
        pass  # the first run ends, the queue starts the next
    second = started.args[0]
    assert first.result is not None and first.result.status == "finished"
    assert len(window.queue) == 0 and not window.runs.queue_box.isVisibleTo(window.runs)
    with qtbot.waitSignal(second.ended, timeout=WAIT_MS) as ended:
        pass
    assert ended.args[0].status == "finished"
    one, two = (window.store.run(s.run_id) for s in (first, second))
    assert datetime.fromisoformat(two["started"]) >= datetime.fromisoformat(one["ended"])  # one after another


@pytest.mark.slow
def test_a_sweep_from_the_app_fills_its_frontier_as_runs_end(qtbot, window, short_project, screenshots):
    project = short_project(steps=3, suite="fast", reference=True)
    assert window.open_project(project)
    dialog = SweepDialog(window.page.config, parent=window)
    qtbot.addWidget(dialog)
    dialog.choose(0, "optimizer.lr", "1e-4, 5e-3")
    assert len(dialog.points) == 2 and dialog.start_button.isEnabled() and "2 runs" in dialog.status.text()
    dialog.choose(1, "optimizer.lr", "1")
    assert not dialog.start_button.isEnabled()  # the same key twice is refused in place
    dialog.choose(1, "", "")
    dialog.accept()
    window._sweep_accepted(dialog)
    sweep = window.sweep
    assert sweep is not None and window.runs.details.currentWidget() is sweep.view
    assert not window.menu_actions.sweep.isEnabled()  # one sweep at a time
    done = []
    sweep.changed.connect(lambda: done.append(sweep.done()))
    with qtbot.waitSignal(sweep.finished, timeout=WAIT_MS * 2):
        pass
    assert 1 in done and done[-1] == 2  # the view was updated after the first run, before the second ended
    assert [p.status for p in sweep.points] == ["finished", "finished"]
    assert len(sweep.view.frontier.points) == 2 and any(p.on_frontier for p in sweep.points)
    assert sweep.view.table.item(0, 1).text() == "1e-4" and sweep.view.table.item(1, 1).text() == "0.005"
    assert window.runs.details.currentWidget() is sweep.view  # its runs did not take the view away
    screenshots(window, "sweep_frontier")
    assert window.menu_actions.sweep.isEnabled()
