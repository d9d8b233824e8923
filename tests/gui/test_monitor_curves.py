"""The run monitor's curves: smoothing equals the bias-corrected EMA it stands for, and the series keep growing."""

import numpy as np
import pytest

from unlearn_studio.gui.monitor import smooth


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


def step_event(step: int) -> "StepEvent":
    from unlearn_studio.core.events import StepEvent

    return StepEvent("run", step, 100, step / 10, {"loss/forget": -0.1 * step, "loss/total": 0.2}, 1e-3, 0.5,
                     1000.0, 500.0, 10.0)


@pytest.mark.parametrize("ending", ("finished", "failed"))
def test_a_run_that_ends_shows_its_last_step_on_every_plot(qtbot, ending):
    """Plots redraw one at a time while steps stream; the end of the run must not leave any behind."""
    from unlearn_studio.core.events import FailedEvent, FinishedEvent
    from unlearn_studio.gui.monitor import RunMonitor

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
    from unlearn_studio.gui.monitor import RunMonitor

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
