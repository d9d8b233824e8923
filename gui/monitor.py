"""The run monitor: live curves of every loss term, the total, learning rate and gradient norm;
progress with ETA, tokens/s and memory; the log tail; pause/resume, stop and save, cancel.

Events only append numbers; the curves are redrawn by a timer at most ``REDRAW_HZ`` times a
second with ``setData`` on existing curves (clipped to the view, downsampled), so a fast run
never floods the GUI thread. The same widget shows a finished run's curves from the store.
"""

from __future__ import annotations

import math
from array import array
from datetime import timedelta

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.events import (
    EvaluationEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    StatusEvent,
    StepEvent,
)

REDRAW_HZ = 20
# While a run streams, one plot is redrawn per pass and the next a little later: painting a plot
# (its axes' text above all) takes about 20 ms on Qt's raster engine, so the three at once held
# the GUI thread for over 100 ms after each step; one at a time keeps every pause short.
STAGGER_MS = 15
LOG_LINES = 1000
TOTAL = "loss/total"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
RESUMABLE = ("interrupted", "cancelled", "failed")

pg.setConfigOptions(antialias=True, background="w", foreground="#333")


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average (TensorBoard-style, bias-corrected); weight 0 returns the values."""
    if weight <= 0 or len(values) == 0:
        return values
    # last_i = w·last_{i-1} + (1−w)·v_i is a first-order IIR filter, run in C by lfilter (a Python
    # loop took 46 ms per 100k-point curve, too slow for 20 Hz redraws); the bias correction
    # divides by 1 − w^(i+1), the weight the first i+1 values have so far.
    from scipy.signal import lfilter  # imported on first use: it costs seconds at start-up

    last = lfilter([1 - weight], [1, -weight], np.asarray(values, dtype=float))
    return last / -np.expm1(np.arange(1, len(values) + 1) * np.log(weight))


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    return str(timedelta(seconds=round(seconds)))


def _plot(title: str, left: str) -> pg.PlotWidget:
    plot = pg.PlotWidget()
    plot.setTitle(title, size="10pt")
    plot.setLabel("left", left)
    plot.setLabel("bottom", "step")
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setDownsampling(auto=True, mode="peak")
    plot.setClipToView(True)
    plot.setMinimumHeight(150)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.enableAutoSIPrefix(False)  # "(x0.001)" beside an axis title reads badly
        # Grid lines at the labelled ticks only: the minor levels' long lines made each paint of a
        # plot take 36 ms instead of 14 on Qt's raster engine (measured on the loss plot).
        axis.setStyle(maxTickLevel=0)
    plot.getAxis("left").setTickDensity(2.0)  # more labelled values up the side, as the minor levels gave
    return plot


class RunMonitor(QWidget):
    resume_requested = Signal(str)  # run id: resume an interrupted run from its last checkpoint

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = None
        self.run_id = ""
        self.followed = ""  # id of the run this monitor followed live (its log and curves are on screen)
        # Growing C arrays: appending is cheap and numpy reads them without converting each point.
        self.series: dict[str, tuple[array, array]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.redraws = 0
        self._stale: list[pg.PlotWidget] = []  # plots with new points not drawn yet, oldest first

        self.loss_plot = _plot("Loss terms and their total", "loss")
        self.loss_legend = self.loss_plot.addLegend(offset=(-10, 10))
        self.lr_plot = _plot("Learning rate", "lr")
        self.grad_plot = _plot("Gradient norm (before clipping)", "norm")
        self.extra_plot = _plot("Method values", "value")
        self.extra_plot.addLegend(offset=(-10, 10))
        self.extra_plot.hide()

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 95)
        self.smoothing.setValue(0)
        self.smoothing.setMaximumWidth(160)
        self.smoothing_label = QLabel()
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.log_scale = QCheckBox("Log scale (of |loss|)")
        self.log_scale.toggled.connect(self._log_scale_changed)
        self._smoothing_changed(0)

        self.status = QLabel("No run selected")
        self.status.setObjectName("runStatus")
        font = self.status.font()
        font.setBold(True)
        self.status.setFont(font)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v of %m")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel()
        self.speed = QLabel()
        self.memory = QLabel()
        for label in (self.eta, self.speed, self.memory):
            label.setMinimumWidth(120)

        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip("Hold the run between two steps; nothing is lost")
        self.pause_button.clicked.connect(self._toggle_pause)
        self.stop_button = QPushButton("Stop && save")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("End after this step and keep a usable adapter and a checkpoint")
        self.stop_button.clicked.connect(self.stop_and_save)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("End after this step without an adapter (checkpoints are kept)")
        self.cancel_button.clicked.connect(lambda: self.cancel(confirm=True))
        self.resume_button = QPushButton("Resume from last checkpoint")
        self.resume_button.setObjectName("resumeCheckpointButton")
        self.resume_button.clicked.connect(lambda: self.resume_requested.emit(self.run_id))
        self.resume_button.hide()

        self.log = QPlainTextEdit()
        self.log.setObjectName("runLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("The run's log appears here.")

        controls = QHBoxLayout()
        controls.addWidget(self.status, 1)
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self.smoothing)
        controls.addWidget(self.smoothing_label)
        controls.addSpacing(12)
        controls.addWidget(self.log_scale)

        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.eta)
        progress_row.addWidget(self.speed)
        progress_row.addWidget(self.memory)

        buttons = QHBoxLayout()
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        for button in (self.pause_button, self.stop_button, self.cancel_button):
            buttons.addWidget(button)

        small_plots = QSplitter(Qt.Orientation.Horizontal)
        for plot in (self.lr_plot, self.grad_plot, self.extra_plot):
            small_plots.addWidget(plot)
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.loss_plot)
        plots.addWidget(small_plots)
        plots.addWidget(self.log)
        plots.setSizes([320, 180, 120])
        plots.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addLayout(progress_row)
        layout.addWidget(plots, 1)
        layout.addLayout(buttons)

        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(1000 // REDRAW_HZ)
        self._redraw_timer.timeout.connect(self._redraw_next_plot)
        self._set_live(False)

    # ---- attaching -------------------------------------------------------------------------------

    def clear(self) -> None:
        self.followed = ""
        self.series.clear()
        self._stale.clear()
        for key, curve in self.curves.items():
            self._plot_for(key).removeItem(curve)
        self.curves.clear()
        self.loss_legend.clear()
        legend = self.extra_plot.getPlotItem().legend
        if legend is not None:
            legend.clear()
        self.extra_plot.hide()
        self.log.clear()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        for label in (self.eta, self.speed, self.memory):
            label.clear()
        self.resume_button.hide()

    def attach(self, session, *, keep: bool = False) -> None:
        """Follow a live run (a RunSession); ``keep`` keeps what is shown (its recorded curves)."""
        if self.session is session:
            return
        self.detach()
        if not keep:
            self.clear()
            self.status.setText("Starting: loading the model and data…")
        else:
            self.status.setText(session.status.capitalize())
        self.session = session
        self.run_id = self.followed = session.run_id
        session.event.connect(self.handle_event)
        self._set_live(True)
        if session.paused:
            self.pause_button.setText("Resume")

    def detach(self) -> None:
        if self.session is not None:
            try:
                self.session.event.disconnect(self.handle_event)
            except (RuntimeError, TypeError):
                pass
        self.session = None
        self._set_live(False)

    def show_history(self, store, run: dict) -> None:
        """A run that is not live: its curves from the store, its status and error."""
        self.detach()
        self.clear()
        self.run_id = run["id"]
        by_key: dict[str, tuple[array, array]] = {}
        for key, step, value in store.metrics(run["id"]):
            if value is None:
                continue
            steps, values = by_key.setdefault(key, (array("d"), array("d")))
            steps.append(step)
            values.append(value)
        self.series = by_key
        last = int(max((s[-1] for s, _ in by_key.values() if s), default=0))  # steps are stored as floats
        total = _total_steps(run) or last
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(last, max(total, 1)))
        for key, label, fmt in (("tokens_per_s", self.speed, "{:,.0f} tokens/s"),
                                ("peak_memory_mb", self.memory, "peak {:,.0f} MB")):
            if by_key.get(key):
                label.setText(fmt.format(by_key[key][1][-1]))
        self.status.setText(f"{run['status'].capitalize()} at step {last}" if last else run["status"].capitalize())
        self.log.appendPlainText(f"Run {run['id']} ({run['method']}), {run['status']}; "
                                 f"output: {run.get('output_dir') or '–'}")
        if run.get("error"):
            self.log.appendPlainText(run["error"])
        self.resume_button.setVisible(run["status"] in RESUMABLE and _has_checkpoint(run))
        self.redraw()

    # ---- events ------------------------------------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        if event.run_id:
            self.run_id = self.followed = event.run_id
        if isinstance(event, StepEvent):
            self._add_step(event)
        elif isinstance(event, StatusEvent):
            self._set_status(event.status, event.message)
            self.append_log("status", f"{event.status}" + (f": {event.message}" if event.message else ""))
        elif isinstance(event, LogEvent):
            self.append_log(event.level, event.message)
        elif isinstance(event, EvaluationEvent):
            self.append_log("info", f"Evaluation {event.phase} ({event.suite} suite): "
                                    f"{len(event.aggregates)} metrics; see the Evaluation tab")
        elif isinstance(event, FinishedEvent):
            self._draw_waiting_plots()
            self._set_status(event.status, f"after {event.steps} steps")
            self.eta.clear()
            self.append_log("info", f"Run {event.status} after {event.steps} steps; adapter: {event.adapter_dir}")
            self._set_live(False)
        elif isinstance(event, FailedEvent):
            self._draw_waiting_plots()
            self._set_status(event.status, event.message)
            self.eta.clear()
            self.append_log("error" if event.status == "failed" else "info", event.message)
            if event.fix:
                self.append_log("info", f"What to do: {event.fix}")
            if event.traceback:
                self.log.appendPlainText(event.traceback.rstrip())
            self._set_live(False)

    def append_log(self, level: str, message: str) -> None:
        self.log.appendPlainText(f"[{level}] {message}")

    def _add_step(self, event: StepEvent) -> None:
        values = {**event.losses, "lr": event.lr, "grad_norm": event.grad_norm, **event.extra}
        for key, value in values.items():
            steps, series = self.series.setdefault(key, (array("d"), array("d")))
            steps.append(event.step)
            series.append(value)
        self.progress.setRange(0, max(event.total_steps, 1))
        self.progress.setValue(event.step)
        self.eta.setText(f"ETA {format_duration(event.eta_s)}")
        self.speed.setText(f"{event.tokens_per_s:,.0f} tokens/s")
        self.memory.setText(f"peak {event.peak_memory_mb:,.0f} MB")
        for key in values:
            plot = self._plot_for(key)
            if plot not in self._stale:
                self._stale.append(plot)
        if not self._redraw_timer.isActive():
            self._redraw_timer.start(1000 // REDRAW_HZ)

    def _set_status(self, status: str, message: str) -> None:
        self.status.setText(status.capitalize() + (f": {message}" if message else ""))
        if status == "paused":
            self.pause_button.setText("Resume")
        elif status in ("resumed", "running"):
            self.pause_button.setText("Pause")

    # ---- drawing -----------------------------------------------------------------------------------

    def _plot_for(self, key: str) -> pg.PlotWidget:
        if key.startswith("loss/"):
            return self.loss_plot
        if key == "lr":
            return self.lr_plot
        if key == "grad_norm":
            return self.grad_plot
        return self.extra_plot

    def _curve(self, key: str) -> pg.PlotDataItem:
        curve = self.curves.get(key)
        if curve is None:
            plot = self._plot_for(key)
            if key == TOTAL:
                pen = pg.mkPen("#111", width=1)
            else:
                same_plot = sum(1 for k in self.curves if self._plot_for(k) is plot and k != TOTAL)
                # One-pixel pens: Qt's raster engine draws wider antialiased lines several
                # times slower (5 curves of 100k points: 237 ms a redraw with 1.8-2.5 px, 87 ms with 1 px).
                pen = pg.mkPen(PALETTE[same_plot % len(PALETTE)], width=1)
            name = key.removeprefix("loss/") if plot in (self.loss_plot, self.extra_plot) else None
            curve = plot.plot([], [], pen=pen, name=name)
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
            if plot is self.extra_plot:
                self.extra_plot.show()
            self.curves[key] = curve
        return curve

    def redraw(self) -> None:
        """Every curve from its series (after a change of smoothing or scale, or a run from the store)."""
        self._stale.clear()
        self._draw(self.series)
        self.redraws += 1

    def _redraw_next_plot(self) -> None:
        """The plot that waited longest for its new points; the next one after STAGGER_MS."""
        if not self._stale:
            return
        plot = self._stale.pop(0)
        self._draw({key: series for key, series in self.series.items() if self._plot_for(key) is plot})
        self.redraws += 1
        if self._stale:
            self._redraw_timer.start(STAGGER_MS)

    def _draw_waiting_plots(self) -> None:
        """The run has ended: no step follows, so every plot still waiting gets its last points now."""
        self._redraw_timer.stop()
        if self._stale:
            self.redraw()

    def _draw(self, series: dict[str, tuple[array, array]]) -> None:
        weight = self.smoothing.value() / 100
        log = self.log_scale.isChecked()
        for key, (steps, values) in series.items():
            if self._plot_for(key) is self.extra_plot and key in ("tokens_per_s", "peak_memory_mb"):
                continue
            # Copies (a memcpy from the C arrays): a view would pin them, and they must keep growing.
            y = np.array(values, dtype=float)
            if key.startswith("loss/") or key == "grad_norm":
                y = smooth(y, weight)
            if key.startswith("loss/") and log:
                y = np.maximum(np.abs(y), 1e-12)
            self._curve(key).setData(np.array(steps, dtype=float), y)
        # Settle each touched plot's auto range now: left to the paint, the new range repaints
        # the axes and the plot a second time right after the first.
        for plot in {self._plot_for(key) for key in series}:
            plot.getPlotItem().getViewBox().updateAutoRange()

    def curve_points(self, key: str) -> int:
        curve = self.curves.get(key)
        if curve is None:
            return 0
        x, _ = curve.getOriginalDataset()
        return 0 if x is None else len(x)

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        self.redraw()

    def _log_scale_changed(self, on: bool) -> None:
        self.loss_plot.setLogMode(y=on)
        self.loss_plot.setLabel("left", "|loss| (log scale)" if on else "loss")
        self.redraw()

    # ---- control -----------------------------------------------------------------------------------

    def _set_live(self, live: bool) -> None:
        for button in (self.pause_button, self.stop_button, self.cancel_button):
            button.setEnabled(live)
        if not live:
            self.pause_button.setText("Pause")

    def _toggle_pause(self) -> None:
        if self.session is None:
            return
        if self.session.paused:
            self.session.resume()
            self.pause_button.setText("Pause")
            self.status.setText("Resuming…")
        else:
            self.session.pause()
            self.pause_button.setText("Resume")
            self.status.setText("Pausing after this step…")

    def stop_and_save(self) -> None:
        if self.session is not None:
            self.session.stop_and_save()
            self.status.setText("Stopping after this step and saving the adapter…")
            self.stop_button.setEnabled(False)

    def cancel(self, confirm: bool = False) -> None:
        if self.session is None:
            return
        if confirm:
            answer = QMessageBox.question(
                self, "Cancel the run?",
                "Cancel ends the run after this step without saving an adapter. Checkpoints already "
                "written are kept, so it can be resumed.\n\nUse “Stop & save” to keep the adapter.")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.session.cancel()
        self.status.setText("Cancelling after this step…")
        self._set_live(False)


def _total_steps(run: dict) -> int | None:
    import json

    try:
        return json.loads(run["config_json"]).get("training", {}).get("max_steps")
    except (ValueError, TypeError, KeyError):
        return None


def _has_checkpoint(run: dict) -> bool:
    from pathlib import Path

    folder = Path(run.get("output_dir") or "") / "checkpoints"
    return folder.is_dir() and any(folder.iterdir())
