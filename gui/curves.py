"""The monitor's curves: loss terms and their total, learning rate, gradient norm and method
values, each on its plot; smoothing and a log scale; a second run overlaid dashed.

Values only append to growing C arrays; a plot is redrawn with ``setData`` on its existing
curves, one plot per pass (``STAGGER_MS`` apart), at most ``REDRAW_HZ`` times a second.
"""

from __future__ import annotations

from array import array

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QSplitter, QWidget

from unlearn_studio.gui.numbers import number
from unlearn_studio.gui.plots import PALETTE, TOTAL_COLOUR, Plot, smooth

REDRAW_HZ = 20
# Painting a plot (its axes' text above all) takes about 20 ms on Qt's raster engine, so the three
# at once held the GUI thread for over 100 ms after each step; one at a time keeps every pause short.
STAGGER_MS = 15
TOTAL = "loss/total"
NOT_PLOTTED = ("tokens_per_s", "peak_memory_mb")

Series = dict[str, tuple[array, array]]


class CurveView(QSplitter):
    """The loss plot beside the small plots; ``controls`` (smoothing, log scale) go where the owner puts them."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.series: Series = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.overlay_series: Series = {}  # a second run, drawn dashed
        self.overlay_curves: dict[str, pg.PlotDataItem] = {}
        self.total_steps = 0
        self.redraws = 0
        self._stale: list[Plot] = []  # plots with new points not drawn yet, oldest first
        self._colours: dict[str, str] = {}

        self.loss_plot = Plot("Loss terms and their total", "loss")
        self.lr_plot = Plot("Learning rate", "lr", bottom=None)
        self.grad_plot = Plot("Gradient norm (before clipping)", "norm", bottom=None)
        self.extra_plot = Plot("Method values", "value", bottom=None)
        self.extra_plot.hide()
        small = QSplitter(Qt.Orientation.Vertical)
        for plot in (self.lr_plot, self.grad_plot, self.extra_plot):
            small.addWidget(plot)
        small.setChildrenCollapsible(False)
        self.addWidget(self.loss_plot)
        self.addWidget(small)
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 2)
        self.setChildrenCollapsible(False)

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 95)
        self.smoothing.setMaximumWidth(120)
        self.smoothing.setToolTip("Averages noisy loss curves over recent steps (0: the raw values)")
        self.smoothing_label = QLabel()
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setToolTip("Plot the size of each loss term on a logarithmic axis")
        self.log_scale.toggled.connect(self._log_scale_changed)
        self.controls = QWidget()
        controls = QHBoxLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self.smoothing)
        controls.addWidget(self.smoothing_label)
        controls.addWidget(self.log_scale)
        self._smoothing_changed(0)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._redraw_next_plot)

    def plots(self) -> tuple[Plot, ...]:
        return self.loss_plot, self.lr_plot, self.grad_plot, self.extra_plot

    # ---- contents --------------------------------------------------------------------------------

    def clear(self) -> None:
        """No curves: legends empty, axes start over."""
        self.series, self.overlay_series = {}, {}
        self._stale.clear()
        self._timer.stop()
        for curves in (self.curves, self.overlay_curves):
            for key, curve in curves.items():
                self._plot_for(key).remove(curve)
            curves.clear()
        self._colours.clear()
        self.total_steps = 0
        for plot in self.plots():
            plot.reset()
        self.extra_plot.hide()

    def set_total(self, steps: int) -> None:
        """The x axes run from 0 to ``steps``."""
        self.total_steps = max(int(steps), 1)
        for plot in self.plots():
            plot.show_steps(self.total_steps)

    def show_series(self, series: Series, total: int, overlay: Series | None = None) -> None:
        """Recorded curves (and a second run's, dashed), drawn at once."""
        self.clear()
        self.series, self.overlay_series = series, overlay or {}
        self.set_total(total)
        self.redraw()

    def add(self, step: int, values: dict[str, float]) -> None:
        """One step's values; their plots are redrawn in turn, soon."""
        for key, value in values.items():
            steps, series = self.series.setdefault(key, (array("d"), array("d")))
            steps.append(step)
            series.append(value)
            plot = self._plot_for(key)
            if plot not in self._stale:
                self._stale.append(plot)
        if not self._timer.isActive():
            self._timer.start(1000 // REDRAW_HZ)

    def curve_points(self, key: str) -> int:
        curve = self.curves.get(key)
        if curve is None:
            return 0
        x, _ = curve.getOriginalDataset()
        return 0 if x is None else len(x)

    # ---- drawing -----------------------------------------------------------------------------------

    def _plot_for(self, key: str) -> Plot:
        if key.startswith("loss/"):
            return self.loss_plot
        if key == "lr":
            return self.lr_plot
        if key == "grad_norm":
            return self.grad_plot
        return self.extra_plot

    def _colour(self, key: str) -> str:
        """The same colour for a key in both runs of an overlay."""
        if key == TOTAL:
            return TOTAL_COLOUR
        if key not in self._colours:
            plot = self._plot_for(key)
            self._colours[key] = PALETTE[sum(1 for k in self._colours if self._plot_for(k) is plot) % len(PALETTE)]
        return self._colours[key]

    def _curve(self, key: str, overlay: bool = False) -> pg.PlotDataItem:
        curves = self.overlay_curves if overlay else self.curves
        curve = curves.get(key)
        if curve is None:
            plot = self._plot_for(key)
            named = plot in (self.loss_plot, self.extra_plot) and key not in self.curves and key not in self.overlay_curves
            curve = plot.curve(key.removeprefix("loss/"), self._colour(key), dashed=overlay, legend=named)
            if plot is self.extra_plot:
                plot.show()
            curves[key] = curve
        return curve

    def redraw(self) -> None:
        """Every curve from its series (after a change of smoothing or scale, or recorded curves)."""
        self._stale.clear()
        self._draw(self.series)
        if self.overlay_series:
            self._draw(self.overlay_series, overlay=True)
        self.redraws += 1

    def draw_waiting(self) -> None:
        """The run has ended: no step follows, so every plot still waiting gets its last points now."""
        self._timer.stop()
        if self._stale:
            self.redraw()

    def _redraw_next_plot(self) -> None:
        """The plot that waited longest for its new points; the next one after STAGGER_MS."""
        if not self._stale:
            return
        plot = self._stale.pop(0)
        self._draw({key: series for key, series in self.series.items() if self._plot_for(key) is plot})
        self.redraws += 1
        if self._stale:
            self._timer.start(STAGGER_MS)

    def _draw(self, series: Series, overlay: bool = False) -> None:
        weight = self.smoothing.value() / 100
        log = self.log_scale.isChecked()
        for key, (steps, values) in series.items():
            if key in NOT_PLOTTED:
                continue
            # Copies (a memcpy from the C arrays): a view would pin them, and they must keep growing.
            y = np.array(values, dtype=float)
            if key.startswith("loss/") or key == "grad_norm":
                y = smooth(y, weight)
            if key.startswith("loss/") and log:
                y = np.maximum(np.abs(y), 1e-12)
            self._curve(key, overlay).setData(np.array(steps, dtype=float), y)
        for plot in {self._plot_for(key) for key in series if key not in NOT_PLOTTED}:
            plot.settle()

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(number(value / 100, 2))
        self.redraw()

    def _log_scale_changed(self, on: bool) -> None:
        self.loss_plot.widget.setLogMode(y=on)
        self.loss_plot.widget.setLabel("left", "|loss| (log scale)" if on else "loss")
        self.redraw()
