"""A stopped run has no "after" numbers: Evaluate now (with its progress) fills the before/after
judgement (plain words, shares as percentages, a tooltip that says what each metric means and its
ideal value, a verdict per metric), the answers and the frontier."""

from __future__ import annotations

import pytest

from unlearn_studio.core.events import StepEvent

WAIT_MS = 300_000


@pytest.mark.slow
def test_evaluate_now_fills_the_table_the_answers_and_the_frontier(qtbot, window, start_short_run, screenshots):
    _project, session = start_short_run(window, steps=200, suite="fast", reference=True)
    with qtbot.waitSignal(session.event, timeout=WAIT_MS, check_params_cb=lambda e: isinstance(e, StepEvent)):
        pass
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.stop_and_save()
    view = window.runs.evaluation
    window.runs.details.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.report is not None and view.report.run_id == session.run_id
                    and view.report.status == "stopped", timeout=WAIT_MS)
    assert view.evaluate_button.isVisible() and not view.report.complete  # stopped runs skip "after"
    assert view.table.rowCount() > 0  # the numbers before training are on screen already
    progress = []
    view.progress.valueChanged.connect(progress.append)
    with qtbot.waitSignal(view.shown, timeout=WAIT_MS):
        view.evaluate_button.click()
        assert view.cancel_button.isVisible()  # long work can be cancelled
    assert progress  # items done were shown while it ran
    assert view.report.complete and view.report.judgement is not None, view.heading.text()
    assert "headline metrics judged" in view.heading.text()
    labels = [view.table.item(r, 0).text() for r in range(view.table.rowCount())]
    row = next(r for r, label in enumerate(labels) if label.endswith("value accuracy"))
    assert view.table.item(row, 1).text().endswith("%")  # a share, written as a percentage
    tooltip = view.table.item(row, 0).toolTip()
    assert "What it is:" in tooltip and "Ideal:" in tooltip and "value_acc" in tooltip
    verdicts = {view.table.item(r, 5).text().split(" (")[0] for r in range(view.table.rowCount())}
    assert verdicts <= {"✓ reached the target", "… moved but short", "· no significant change", "✗ wrong way",
                        "! overshot", "–"}
    coloured = {view.table.item(r, 0).background().color().name() for r in range(view.table.rowCount())
                if view.table.item(r, 5).text() != "–"}
    assert coloured <= {"#dff3e3", "#fff4d6", "#eeeeee", "#f9dcdc", "#fde2c8"}
    view.every.setChecked(True)
    assert view.table.rowCount() >= len(labels)
    screenshots(window, "evaluation_before_after")
    view.tabs.setCurrentIndex(1)
    assert view.answer_set.currentText() == "forget" and view.answers.rowCount() > 0
    assert view.answers.item(0, 3).text()  # the unlearned model's answer
    screenshots(window, "evaluation_answers")
    view.tabs.setCurrentIndex(2)
    screenshots(window, "evaluation_frontier")
    assert any("(this run)" in label for label in view.frontier.labels())


@pytest.mark.slow
def test_while_a_run_trains_its_numbers_before_training_show(qtbot, window, start_short_run):
    """The log says the Evaluation tab shows them; the tab must not say they come later."""
    from unlearn_studio.core.events import EvaluationEvent

    _project, session = start_short_run(window, steps=400, suite="fast")
    with qtbot.waitSignal(session.event, timeout=WAIT_MS,
                          check_params_cb=lambda e: isinstance(e, EvaluationEvent) and e.phase == "before"):
        pass
    view = window.runs.evaluation
    qtbot.waitUntil(lambda: view.report is not None and bool(view.report.before) and view.table.rowCount() > 0,
                    timeout=WAIT_MS)
    assert view.heading.text().startswith("Before training:")
    assert "the Evaluation tab shows them" in window.runs.monitor.log.toPlainText()
    assert view.table.item(0, 1).text() != "–" and view.table.item(0, 2).text() == "–"  # before, no after yet
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.cancel()
