"""The monitor's loss smoothing equals the bias-corrected exponential moving average it stands for."""

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
