"""The run monitor: the live curves (gui/curves.py); progress with ETA, tokens/s and memory, and
the evaluation's progress while it runs; the log tail; pause/resume, stop and save, cancel. The
same widget shows a recorded run, and two recorded runs overlaid (the second dashed)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.events import (
    EvaluationEvent,
    EvaluationProgressEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    StatusEvent,
    StepEvent,
)
from unlearn_studio.core.results.run_info import RunCurves, RunInfo
from unlearn_studio.gui.curves import CurveView
from unlearn_studio.gui.numbers import count, duration_text

LOG_LINES = 1000
STEP_FORMAT = "step %v of %m"
PHASE_WORDS = {"before": "before training", "after": "after training"}
TRAINING = ("running", "resumed", "starting")  # statuses a step replaces with "Running: step N of M"


class RunMonitor(QWidget):
    resume_requested = Signal(str)  # run id: resume an interrupted run from its last checkpoint

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = None
        self.run_id = ""
        self.followed = ""  # id of the run this monitor followed live (its log and curves are on screen)
        self._live_status = ""  # the engine's last status while a run streams
        self._step = 0  # the last step shown

        self.view = CurveView()
        self.status = QLabel("No run selected")
        self.status.setObjectName("runStatus")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        font = self.status.font()
        font.setBold(True)
        self.status.setFont(font)
        self.progress = QProgressBar()
        self.progress.setObjectName("runProgress")
        self.progress.setFormat(STEP_FORMAT)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel()
        self.eta.setToolTip("Time left at the current speed")
        self.speed = QLabel()
        self.memory = QLabel()

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

        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        for label in (self.eta, self.speed, self.memory):
            status_row.addWidget(label)
        controls = QHBoxLayout()
        controls.addWidget(self.progress, 1)
        controls.addWidget(self.view.controls)
        buttons = QHBoxLayout()
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        for button in (self.pause_button, self.stop_button, self.cancel_button):
            buttons.addWidget(button)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.log)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([400, 90])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(status_row)
        layout.addLayout(controls)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(buttons)
        self._set_live(False)

    # ---- what is shown ---------------------------------------------------------------------------

    @property
    def curves(self):
        return self.view.curves

    def curve_points(self, key: str) -> int:
        return self.view.curve_points(key)

    def redraw(self) -> None:
        self.view.redraw()

    def clear(self) -> None:
        """Nothing shown: no curves, axes and legends start over, the log is empty."""
        self.followed = ""
        self.view.clear()
        self.log.clear()
        self._set_steps(1, 0)
        self.progress.setFormat("")  # no run: no "step 0 of 1"
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
        self._live_status = session.status
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

    def show_history(self, info: RunInfo, curves: RunCurves) -> None:
        """A run that is not live: its recorded curves, its status and error."""
        self.detach()
        self.clear()
        self.run_id = info.run_id
        last = curves.last_step
        total = info.total_steps or last
        self.view.show_series(curves.series, total)
        self._set_steps(total, last)
        for key, label, text in (("tokens_per_s", self.speed, "{} tokens/s"),
                                 ("peak_memory_mb", self.memory, "peak {} MB")):
            if curves.series.get(key):
                label.setText(text.format(count(round(curves.series[key][1][-1]))))
        status = info.status.capitalize()
        self.status.setText(f"{status} at step {last}" if last else status)
        row = info.row
        self.log.appendPlainText(f"Run {info.run_id} ({row['method']}), {info.status}; "
                                 f"output: {row.get('output_dir') or '–'}")
        if row.get("error"):
            self.log.appendPlainText(row["error"])
        self.resume_button.setVisible(info.resumable)

    def show_overlay(self, first: tuple[str, RunCurves, int | None], second: tuple[str, RunCurves, int | None]) -> None:
        """Two recorded runs on the same plots: the first solid, the second dashed."""
        self.detach()
        self.clear()
        (label_a, curves_a, total_a), (label_b, curves_b, total_b) = first, second
        self.run_id = ""
        total = max(total_a or curves_a.last_step, total_b or curves_b.last_step)
        self.view.show_series(curves_a.series, total, overlay=curves_b.series)
        self._set_steps(1, 0)
        self.progress.setFormat(f"{label_a}: step {curves_a.last_step} · {label_b}: step {curves_b.last_step}")
        self.status.setText(f"Solid lines: {label_a}   ·   dashed lines: {label_b}")
        self.log.appendPlainText(f"Overlay of {label_a} (solid lines) and {label_b} (dashed lines).")

    # ---- events ------------------------------------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        if event.run_id:
            self.run_id = self.followed = event.run_id
        if isinstance(event, StepEvent):
            self._add_step(event)
        elif isinstance(event, StatusEvent):
            self._live_status = event.status
            self._set_status(event.status, event.message)
            self.append_log("status", f"{event.status}" + (f": {event.message}" if event.message else ""))
        elif isinstance(event, LogEvent):
            self.append_log(event.level, event.message)
        elif isinstance(event, EvaluationProgressEvent):
            self._show_evaluation_progress(event)
        elif isinstance(event, EvaluationEvent):
            self._set_steps(self.view.total_steps, self._step)
            self.append_log("info", f"Evaluation {PHASE_WORDS.get(event.phase, event.phase)} done "
                                    f"({event.suite} suite, {len(event.aggregates)} numbers): "
                                    "the Evaluation tab shows them.")
        elif isinstance(event, (FinishedEvent, FailedEvent)):
            self.view.draw_waiting()
            self.eta.clear()
            self._set_live(False)
            if isinstance(event, FinishedEvent):
                self._set_status(event.status, f"after {event.steps} steps")
                self.append_log("info", f"Run {event.status} after {event.steps} steps; adapter: {event.adapter_dir}")
            else:
                self._set_status(event.status, event.message)
                self.append_log("error" if event.status == "failed" else "info", event.message)
                if event.fix:
                    self.append_log("info", f"What to do: {event.fix}")
                if event.traceback:
                    self.log.appendPlainText(event.traceback.rstrip())

    def append_log(self, level: str, message: str) -> None:
        self.log.appendPlainText(f"[{level}] {message}")

    def _add_step(self, event: StepEvent) -> None:
        if event.total_steps != self.view.total_steps:
            self.view.set_total(event.total_steps)
        self.view.add(event.step, {**event.losses, "lr": event.lr, "grad_norm": event.grad_norm, **event.extra})
        self._set_steps(event.total_steps, event.step)
        self.eta.setText(f"{duration_text(event.eta_s)} left" if event.eta_s is not None else "")
        self.speed.setText(f"{count(round(event.tokens_per_s))} tokens/s")
        self.memory.setText(f"peak {count(round(event.peak_memory_mb))} MB")
        if self._live_status in TRAINING:
            # A step means the run trains: an earlier "Resumed: at step 9" would be stale now.
            self.status.setText(f"Running: step {event.step} of {event.total_steps}")

    def _show_evaluation_progress(self, event: EvaluationProgressEvent) -> None:
        phase = PHASE_WORDS.get(event.phase, "")
        self.status.setText(f"Evaluating {phase}: {event.set_name}" if phase else f"Evaluating: {event.set_name}")
        self.progress.setFormat(f"{event.set_name}: %v of %m items")
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(min(event.done, max(event.total, 1)))
        self.eta.setText(f"{duration_text(event.eta_s)} left" if event.eta_s is not None else "")

    def _set_steps(self, total: int, done: int) -> None:
        self._step = done
        self.progress.setFormat(STEP_FORMAT)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))

    def _set_status(self, status: str, message: str) -> None:
        self.status.setText(status.capitalize() + (f": {message}" if message else ""))
        if status == "paused":
            self.pause_button.setText("Resume")
        elif status in ("resumed", "running"):
            self.pause_button.setText("Pause")

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
