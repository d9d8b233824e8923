"""What the app is doing in the background, and what it said: every running job with its progress
and a Cancel button where the work can stop early, and the app's log (every error shown in a
dialog lands here too). A compact indicator in the status bar names the oldest running job."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.gui.jobs import Job, Jobs, Progress
from unlearn_studio.gui.numbers import duration_text

LOG_LINES = 2000
APP_LOGGER = "unlearn_studio"


def progress_text(job: Job) -> str:
    """'Evaluating: forget 12 of 40 · about 1 min 05 s left' from a job's name and progress."""
    progress = job.progress or Progress()
    parts = [job.name]
    if progress.text:
        parts.append(progress.text)
    text = ": ".join(parts)
    if progress.total:
        text += f" ({progress.done:,} of {progress.total:,})"
    if progress.eta_s is not None:
        text += f" · about {duration_text(progress.eta_s)} left"
    return text


def _fill_bar(bar: QProgressBar, job: Job) -> None:
    progress = job.progress
    if progress is None or not progress.total:
        bar.setRange(0, 0)  # busy: no count to show
    else:
        bar.setRange(0, progress.total)
        bar.setValue(min(progress.done, progress.total))


class _LogRelay(QObject):
    line = Signal(str, int)  # text, logging level


class _QtLogHandler(logging.Handler):
    """Log records from any thread, handed to the GUI thread as a queued signal."""

    def __init__(self, relay: _LogRelay):
        super().__init__(logging.INFO)
        self.relay = relay
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.relay.line.emit(self.format(record), record.levelno)
        except RuntimeError:  # the panel is gone (the app is closing)
            pass


class _JobRow(QWidget):
    def __init__(self, job: Job):
        super().__init__()
        self.job = job
        self.label = QLabel(job.name)
        self.label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(220)
        self.bar.setTextVisible(False)
        self.cancel = QPushButton("Cancel")
        self.cancel.setObjectName("cancelJobButton")
        self.cancel.setVisible(job.cancellable)
        self.cancel.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel)
        job.progressed.connect(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        self.label.setText(progress_text(self.job))
        _fill_bar(self.bar, self.job)

    def _cancel(self) -> None:
        self.job.cancel()
        self.cancel.setEnabled(False)
        self.cancel.setText("Cancelling…")


class ActivityPanel(QWidget):
    """Running jobs (with Cancel) above the app's log."""

    def __init__(self, jobs: Jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("activityPanel")
        self.rows: dict[int, _JobRow] = {}
        self.idle = QLabel("Nothing is running in the background.")
        self.idle.setStyleSheet("color: #666")
        self.running = QVBoxLayout()
        self.running.setContentsMargins(0, 0, 0, 0)
        self.running.addWidget(self.idle)
        self.log = QPlainTextEdit()
        self.log.setObjectName("appLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("What the app did and every problem it showed appear here.")
        layout = QVBoxLayout(self)
        layout.addLayout(self.running)
        layout.addWidget(self.log, 1)

        self._relay = _LogRelay(self)
        self._relay.line.connect(self._add_line)
        self._handler = _QtLogHandler(self._relay)
        logger = logging.getLogger(APP_LOGGER)
        logger.addHandler(self._handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        self.destroyed.connect(lambda *_: logger.removeHandler(self._handler))
        jobs.job_started.connect(self._job_started)
        jobs.job_ended.connect(self._job_ended)
        for job in jobs.running():
            self._job_started(job)

    def detach_log(self) -> None:
        logging.getLogger(APP_LOGGER).removeHandler(self._handler)

    def _add_line(self, text: str, level: int) -> None:
        if level >= logging.ERROR:
            self.log.appendHtml(f"<span style='color:#b3261e'>{_html(text)}</span>")
        elif level >= logging.WARNING:
            self.log.appendHtml(f"<span style='color:#8a6d00'>{_html(text)}</span>")
        else:
            self.log.appendPlainText(text)

    def _job_started(self, job: Job) -> None:
        row = _JobRow(job)
        self.rows[job.id] = row
        self.running.addWidget(row)
        self.idle.hide()

    def _job_ended(self, job: Job) -> None:
        row = self.rows.pop(job.id, None)
        if row is not None:
            row.deleteLater()
        self.idle.setVisible(not self.rows)


class ActivityIndicator(QWidget):
    """The status bar's view of the background: the oldest running job, its progress, how many
    more; a click on "Activity" shows the panel with all of them and the log."""

    open_requested = Signal()

    def __init__(self, jobs: Jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("activityIndicator")
        self.jobs = jobs
        self.label = QLabel()
        self.label.setObjectName("activityLabel")
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(360)  # the job's name and progress stay readable beside the status message
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(120)
        self.bar.setMaximumHeight(14)
        self.button = QPushButton("Activity")
        self.button.setObjectName("activityButton")
        self.button.setFlat(True)
        self.button.setToolTip("Show what runs in the background and the app's log")
        self.button.clicked.connect(self.open_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.button)
        self._shown: Job | None = None
        jobs.job_started.connect(lambda _: self.refresh())
        jobs.job_ended.connect(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        running = [job for job in self.jobs.running() if not job.discarded]
        if self._shown is not None:
            try:
                self._shown.progressed.disconnect(self._show_progress)
            except (RuntimeError, TypeError):
                pass
        self._shown = running[0] if running else None
        self.bar.setVisible(self._shown is not None)
        self.label.setVisible(self._shown is not None)
        if self._shown is not None:
            self._shown.progressed.connect(self._show_progress)
            self._show_progress()

    def _show_progress(self, *_) -> None:
        job = self._shown
        if job is None:
            return
        more = len([j for j in self.jobs.running() if not j.discarded]) - 1
        text = progress_text(job) + (f"  (+{more} more)" if more > 0 else "")
        self.label.setText(text)
        self.label.setToolTip(text)
        _fill_bar(self.bar, job)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
