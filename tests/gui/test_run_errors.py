"""A run that cannot start: its error reaches the one dialog, the run's log and the app's log."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

WAIT_MS = 300_000


@pytest.mark.slow
def test_a_run_that_cannot_start_reaches_the_error_dialog_and_both_logs(qtbot, window, start_short_run, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A."}\n{"question": 3\n', encoding="utf-8")
    _project, session = start_short_run(window, forget=str(bad))
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "errorDialog") is not None, timeout=WAIT_MS)
    dialog = window.findChild(QMessageBox, "errorDialog")
    assert "bad row" in dialog.text() and "What to do" in dialog.informativeText()
    assert "bad row" in window.runs.monitor.log.toPlainText()
    qtbot.waitUntil(lambda: "bad row" in window.activity.log.toPlainText(), timeout=WAIT_MS)
    assert not window.session.running and window.menu_actions.new_run.isEnabled()
    dialog.close()
