"""The run monitor's curves: smoothing equals the bias-corrected EMA it stands for, and the series keep growing."""

from array import array

import numpy as np
import pytest
from PySide6.QtCore import Qt

from unlearn_studio.core.events import (
    EvaluationEvent,
    EvaluationProgressEvent,
    FailedEvent,
    FinishedEvent,
    StatusEvent,
    StepEvent,
)
from unlearn_studio.core.results.run_info import RunCurves
from unlearn_studio.gui.monitor import RunMonitor
from unlearn_studio.gui.plots import smooth


def recursive_ema(values, weight):
    out, last, norm = [], 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return np.array(out)


@pytest.mark.parametrize("weight", [0.3, 0.6, 0.95])
def test_smoothing_matches_the_recursive_definition(weight):
    values = np.random.default_rng(1).normal(size=500).cumsum()
    np.testing.assert_allclose(smooth(values, weight), recursive_ema(values, weight), rtol=1e-10, atol=1e-10)


def test_no_smoothing_and_empty_curves_pass_through():
    values = np.array([3.0, 1.0, 2.0])
    assert smooth(values, 0.0) is values
    assert len(smooth(np.array([]), 0.5)) == 0
    assert smooth(np.array([4.0]), 0.9)[0] == pytest.approx(4.0)  # bias correction: the first point is itself


def step_event(step: int) -> StepEvent:
    return StepEvent("run", step, 100, step / 10, {"loss/forget": -0.1 * step, "loss/total": 0.2}, 1e-3, 0.5,
                     1000.0, 500.0, 10.0)


@pytest.mark.parametrize("ending", ("finished", "failed"))
def test_a_run_that_ends_shows_its_last_step_on_every_plot(qtbot, ending):
    """Plots redraw one at a time while steps stream; the end of the run must not leave any behind."""

    monitor = RunMonitor()
    qtbot.addWidget(monitor)
    for step in range(1, 4):
        monitor.handle_event(step_event(step))  # no event loop runs: the staggered redraws never fire
    end = (FinishedEvent("run", "finished", "/tmp/adapter", 3) if ending == "finished"
           else FailedEvent("run", "failed", "loss/forget is NaN at step 3"))
    monitor.handle_event(end)
    assert {key: monitor.curve_points(key) for key in ("loss/forget", "loss/total", "lr", "grad_norm")} == {
        "loss/forget": 3, "loss/total": 3, "lr": 3, "grad_norm": 3}


def test_curves_keep_growing_after_a_redraw(qtbot):
    """The series are C arrays numpy reads; a redraw must not pin them (appending would then fail)."""

    monitor = RunMonitor()
    qtbot.addWidget(monitor)
    for step in range(1, 4):
        monitor.handle_event(step_event(step))
    monitor.redraw()
    for step in range(4, 8):
        monitor.handle_event(step_event(step))
    monitor.redraw()
    assert monitor.curve_points("loss/forget") == 7
    assert list(monitor.curves["loss/forget"].getOriginalDataset()[1]) == pytest.approx([-0.1 * s for s in range(1, 8)])


# ---- what the monitor shows while a run streams, and recorded runs ----------------------------------


def monitor_with_steps(qtbot, steps: int, total: int = 100):

    monitor = RunMonitor()
    qtbot.addWidget(monitor)
    monitor.resize(900, 600)
    for step in range(1, steps + 1):
        event = step_event(step)
        monitor.handle_event(type(event)(**{**event.__dict__, "total_steps": total}))
    return monitor


def test_a_new_run_starts_from_clean_axes_spanning_its_steps(qtbot):
    monitor = monitor_with_steps(qtbot, 1, total=150)
    monitor.redraw()
    x_range = monitor.view.loss_plot.widget.getPlotItem().getViewBox().viewRange()[0]
    assert x_range[0] >= -5 and x_range[0] < 1 and x_range[1] >= 150  # not -5 to 10 at step 1
    assert monitor.view.loss_plot.legend.names() == ["forget", "total"]
    monitor.clear()
    assert monitor.view.loss_plot.legend.names() == [] and monitor.curve_points("loss/forget") == 0
    assert monitor.progress.text() == ""  # no "step 0 of 1" when nothing is shown


def test_a_step_replaces_a_stale_resumed_status(qtbot):
    monitor = monitor_with_steps(qtbot, 0)
    monitor.handle_event(StatusEvent("run", "resumed", "at step 9", 9))
    assert monitor.status.text() == "Resumed: at step 9"
    for step in (10, 61):
        monitor.handle_event(step_event(step))
    assert monitor.status.text() == "Running: step 61 of 100"


def test_the_evaluations_progress_shows_items_done_and_time_left(qtbot):
    monitor = monitor_with_steps(qtbot, 0)
    monitor.handle_event(EvaluationProgressEvent("run", "before", "forget", 12, 40, 65.0))
    assert monitor.status.text() == "Evaluating before training: forget"
    assert monitor.progress.text() == "forget: 12 of 40 items" and monitor.eta.text() == "1 min 05 s left"
    monitor.handle_event(EvaluationEvent("run", "before", "fast", {"forget/value_acc": 1.0}))
    assert "the Evaluation tab shows them" in monitor.log.toPlainText()
    monitor.handle_event(step_event(1))
    assert monitor.progress.text() == "step 1 of 100"


def test_two_recorded_runs_overlay_the_second_dashed(qtbot, screenshots):
    def curves(scale: float, steps: int) -> RunCurves:
        xs = array("d", range(1, steps + 1))
        return RunCurves({"loss/forget": (xs, array("d", [-scale * s for s in xs])),
                          "loss/total": (xs, array("d", [scale] * steps)), "lr": (xs, array("d", [1e-3] * steps))})

    monitor = RunMonitor()
    qtbot.addWidget(monitor)
    monitor.show_overlay(("run aaaaaaaa grad_diff", curves(0.1, 30), 30), ("run bbbbbbbb npo", curves(0.2, 50), 50))
    assert monitor.view.overlay_curves["loss/forget"].opts["pen"].style() == Qt.PenStyle.DashLine
    assert monitor.view.curves["loss/forget"].opts["pen"].style() == Qt.PenStyle.SolidLine
    assert monitor.view.overlay_curves["loss/forget"].opts["pen"].color() == monitor.view.curves["loss/forget"].opts["pen"].color()
    assert monitor.view.loss_plot.legend.names() == ["forget", "total"]  # one entry a term, not one a run
    assert "dashed lines: run bbbbbbbb npo" in monitor.status.text()
    x_range = monitor.view.loss_plot.widget.getPlotItem().getViewBox().viewRange()[0]
    assert x_range[1] >= 50
    screenshots(monitor, "monitor_overlay", fits=lambda w, h: (w - 240, h - 300))
