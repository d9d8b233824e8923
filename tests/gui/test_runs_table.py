"""The runs table: sorted by start, a live run's duration counts up, delete keeps files unless asked."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.runs_table import COLUMNS, RunsTable

WAIT_MS = 300_000


@pytest.mark.slow
def test_runs_table_sorts_and_delete_keeps_files_unless_asked(qtbot, window, start_short_run):
    project, session = start_short_run(window, steps=2, suite="none")
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        pass
    second = window.manager.rerun(confirm=False)
    with qtbot.waitSignal(second.ended, timeout=WAIT_MS):
        pass
    table = window.runs.table
    assert set(table.run_ids()) == {session.run_id, second.run_id}
    table.sortByColumn(COLUMNS.index("Started"), Qt.SortOrder.AscendingOrder)
    assert table.run_ids() == [session.run_id, second.run_id]  # by start time, oldest first

    folders = {run_id: Path(window.store.run(run_id)["output_dir"]) for run_id in table.run_ids()}
    table.select_runs([session.run_id])
    assert window.manager.delete_run(confirm=False)
    assert folders[session.run_id].is_dir()  # files kept
    table.select_runs([second.run_id])
    assert window.manager.delete_run(confirm=False, delete_files=True)
    assert not folders[second.run_id].exists()
    assert window.store.runs() == [] and table.run_ids() == []
    assert json.loads(json.dumps(window.store.projects()))[0]["path"] == str(project)


def test_a_live_runs_duration_counts_up_without_a_status_change(qtbot, window):
    config = RunConfig.load(demo_project())
    project_id = window.store.ensure_project(config.name, demo_project())
    run_id = window.store.start_run(project_id, config, demo_project().parent / "runs")
    table = RunsTable()
    qtbot.addWidget(table)
    row = window.store.run(run_id)
    started = datetime.now(timezone.utc) - timedelta(minutes=3)
    table.show_runs(window.store, [{**row, "started": started.isoformat()}])
    column = COLUMNS.index("Duration")
    assert table.model_.item(0, column).text().startswith("3 min")
    assert table._clock.isActive()  # ticking once a second while a run trains
    table.model_.item(0, column).setData((started - timedelta(minutes=2)).timestamp(), Qt.ItemDataRole.UserRole + 2)
    table._tick()  # what the clock does each second
    assert table.model_.item(0, column).text().startswith("5 min")
    table.show_runs(window.store, [{**row, "status": "finished", "ended": datetime.now(timezone.utc).isoformat()}])
    assert not table._clock.isActive()
