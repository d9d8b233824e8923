"""Pause, resume, and stop and save from the run monitor while a short run trains."""

from __future__ import annotations

import pytest

from unlearn_studio.core.events import StepEvent

WAIT_MS = 300_000


@pytest.mark.slow
def test_pause_holds_the_run_and_resume_goes_on(qtbot, window, start_short_run, wait_for_status, screenshots):
    _project, session = start_short_run(window, steps=200, suite="none")
    monitor = window.runs.monitor
    session.pause()  # checked before the first step: the run holds there
    with wait_for_status(session, "paused"):
        pass
    assert monitor.pause_button.text() == "Resume"
    assert window.store.run(session.run_id)["status"] == "paused"
    screenshots(window, "monitor_paused")
    with qtbot.waitSignal(session.event, timeout=WAIT_MS, check_params_cb=lambda e: isinstance(e, StepEvent)):
        monitor.pause_button.click()  # resume
    assert monitor.pause_button.text() == "Pause"
    assert monitor.status.text().startswith("Running: step ")  # not the stale "Resumed" of before
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.cancel()


@pytest.mark.slow
def test_stop_and_save_while_paused_keeps_a_usable_adapter(qtbot, window, start_short_run, wait_for_status,
                                                           screenshots):
    _project, session = start_short_run(window, steps=200, suite="none")
    monitor = window.runs.monitor
    with qtbot.waitSignal(session.event, timeout=WAIT_MS, check_params_cb=lambda e: isinstance(e, StepEvent)):
        pass
    with wait_for_status(session, "paused"):
        monitor.pause_button.click()
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS) as ended:
        monitor.stop_button.click()
    result = ended.args[0]
    assert result.status == "stopped" and (result.adapter_dir / "adapter_config.json").is_file()
    qtbot.waitUntil(lambda: monitor.curve_points("loss/total") >= 1, timeout=WAIT_MS)
    assert monitor.status.text().startswith("Stopped")
    screenshots(window, "monitor_stopped")
