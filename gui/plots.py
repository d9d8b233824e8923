"""The monitor's plots: pyqtgraph plot widgets set up for speed and small screens, a legend that
sits above a plot instead of over its curves, and the smoothing of noisy loss curves."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
TOTAL_COLOUR = "#111111"
MIN_PLOT_HEIGHT = 70  # a 700-px-high window still shows every plot with its axis labels

pg.setConfigOptions(antialias=True, background="w", foreground="#333")


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average (TensorBoard-style, bias-corrected); weight 0 returns the values."""
    if weight <= 0 or len(values) == 0:
        return values
    # last_i = w·last_{i-1} + (1−w)·v_i is a first-order IIR filter, run in C by lfilter (a Python
    # loop took 46 ms per 100k-point curve, too slow for 20 Hz redraws); the bias correction
    # divides by 1 − w^(i+1), the weight the first i+1 values have so far.
    from scipy.signal import lfilter  # imported on first use: scipy costs seconds at start-up

    last = lfilter([1 - weight], [1, -weight], np.asarray(values, dtype=float))
    return last / -np.expm1(np.arange(1, len(values) + 1) * np.log(weight))


class LegendRow(QLabel):
    """Coloured names of a plot's curves, in one wrapping line above the plot (pyqtgraph's own
    legend sits inside the plot and hides the curves on a small screen)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.entries: dict[str, tuple[str, bool]] = {}  # name -> (colour, dashed)

    def add(self, name: str, colour: str, dashed: bool = False) -> None:
        self.entries[name] = (colour, dashed)
        self._render()

    def clear_entries(self) -> None:
        self.entries.clear()
        self._render()

    def names(self) -> list[str]:
        return list(self.entries)

    def _render(self) -> None:
        parts = [f"<span style='color:{colour}'>{'╌╌' if dashed else '━━'}</span>&nbsp;{name}"
                 for name, (colour, dashed) in self.entries.items()]
        self.setText("&nbsp;&nbsp;&nbsp;".join(parts))
        self.setVisible(bool(parts))


class Plot(QWidget):
    """A titled plot with its legend row; ``widget`` is the pyqtgraph PlotWidget."""

    def __init__(self, title: str, left: str, *, bottom: str | None = "step", parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel(f"<b>{title}</b>")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.legend = LegendRow()
        self.legend.hide()
        self.widget = pg.PlotWidget()
        self.widget.setLabel("left", left)
        if bottom:
            self.widget.setLabel("bottom", bottom)
        self.widget.showGrid(x=True, y=True, alpha=0.25)
        self.widget.setDownsampling(auto=True, mode="peak")
        self.widget.setClipToView(True)
        self.widget.setMinimumHeight(MIN_PLOT_HEIGHT)
        for side in ("left", "bottom"):
            axis = self.widget.getAxis(side)
            axis.enableAutoSIPrefix(False)  # "(x0.001)" beside an axis title reads badly
            # Grid lines at the labelled ticks only: the minor levels' long lines made each paint of a
            # plot take 36 ms instead of 14 on Qt's raster engine (measured on the loss plot).
            axis.setStyle(maxTickLevel=0)
        self.widget.getAxis("left").setTickDensity(2.0)  # more labelled values up the side
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.title)
        layout.addWidget(self.legend)
        layout.addWidget(self.widget, 1)

    def curve(self, name: str, colour: str, *, dashed: bool = False, legend: bool = True) -> pg.PlotDataItem:
        # One-pixel pens: Qt's raster engine draws wider antialiased lines several times slower
        # (5 curves of 100k points: 237 ms a redraw with 1.8-2.5 px, 87 ms with 1 px).
        pen = pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine)
        item = self.widget.plot([], [], pen=pen)
        item.setClipToView(True)
        item.setDownsampling(auto=True, method="peak")
        if legend:
            self.legend.add(name, colour, dashed)
        return item

    def remove(self, item: pg.PlotDataItem) -> None:
        self.widget.removeItem(item)

    def reset(self, steps: int | None = None) -> None:
        """No curves: the legend empties and the axes start over (x from 0 to ``steps`` if known)."""
        self.legend.clear_entries()
        self.show_steps(steps or 1)
        self.widget.enableAutoRange(axis="y")

    def show_steps(self, steps: int) -> None:
        """The x axis runs from 0 to ``steps``: it stays put while a run fills it, instead of
        rescaling (and running from −5 to 10) at every early step."""
        self.widget.setXRange(0, max(steps, 1), padding=0.02)

    def settle(self) -> None:
        # Settle the auto range now: left to the paint, the new range repaints the axes and the
        # plot a second time right after the first.
        self.widget.getPlotItem().getViewBox().updateAutoRange()
