"""A run's evaluation: the before/after judgement (each metric's change with its 95% interval, its
target and a verdict: reached, moved but short, no significant change, wrong way, overshot), the
original and unlearned answers per item, the project's forget-quality / utility frontier, and
collapse warnings. While a run trains, its numbers before training show as soon as they are
measured. The report is read (and, on request, computed with progress and Cancel) in the
background; this widget only shows it."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.table import MARKS
from unlearn_studio.core.evaluation.verdicts import VERDICTS
from unlearn_studio.gui.frontier_plot import FrontierPlot, Point
from unlearn_studio.gui.jobs import JobContext, Jobs, JobSlot
from unlearn_studio.gui.numbers import DASH, change, duration_text, number, share
from unlearn_studio.gui.words import is_share, metric_tooltip
from unlearn_studio.gui.work_header import work_header

VERDICT_COLOURS = {"reached": "#dff3e3", "short": "#fff4d6", "none": "#eeeeee", "wrong_way": "#f9dcdc",
                   "overshot": "#fde2c8"}
RIGHT_COLOUR, WRONG_COLOUR = QColor("#1b7f3b"), QColor("#b3261e")
TABLE_COLUMNS = ("Metric", "Before", "After", "Change (95% interval)", "Target", "Verdict")
ANSWER_COLUMNS = ("Question", "Reference answer", "Original model", "Unlearned model")
RUNNING = ("running", "paused", "queued", "evaluating")
PHASES = {"before": "before training", "after": "after training"}


def metric_value(key: str, value: float | None) -> str:
    return share(value) if is_share(key) else number(value)


def change_text(row) -> str:
    """"−12.5 points [−20, −5]": the change and its 95% interval, shares in percentage points."""
    if math.isnan(row.change):
        return DASH
    as_share = is_share(row.key)
    text = change(row.change, as_share=as_share)
    low, high = row.change_ci
    if not (math.isnan(low) or math.isnan(high)):
        scale = 100 if as_share else 1
        text += f" [{number(low * scale)}, {number(high * scale)}]"
    return text


def target_text(row) -> str:
    if row.target is None:
        return row.reason or DASH
    return row.target.words


def _item(text: str, tooltip: str | None = None, align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setToolTip(tooltip if tooltip is not None else text)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _load_report(store, run_id: str, _ctx: JobContext):
    """The run's report, and for a run judged only before training, its rows before training."""
    # The evaluation (and torch behind it) is imported on a worker.
    from unlearn_studio.core.evaluation.result import load_result
    from unlearn_studio.core.evaluation.verdicts import describe
    from unlearn_studio.core.results.report import load_run_report

    report = load_run_report(store, run_id)
    before_rows = []
    if not report.complete and report.before:
        paths = [e["items_path"] for e in store.evaluations(run_id) if e["phase"] == "before" and e["items_path"]]
        try:
            before_rows = describe(load_result(paths[-1])) if paths else []
        except UserError:
            before_rows = []
    return report, before_rows


def _evaluate(store, run_id: str, ctx: JobContext):
    from unlearn_studio.core.results.report import evaluate_run  # on a worker, as in _load_report

    return evaluate_run(store, run_id, progress=ctx.report, should_stop=ctx.should_stop), []


class EvaluationView(QWidget):
    shown = Signal()  # a report (or its absence) is on screen

    def __init__(self, jobs: Jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.store = None
        self.run_id = ""
        self.report = None
        self.before_rows: list = []
        self._job = JobSlot(jobs, parent=self)  # reading or evaluating: the newest request wins

        self.heading = QLabel("Select a run to see its evaluation.")
        self.heading.setObjectName("evaluationHeading")
        self.heading.setWordWrap(True)
        self.heading.setMinimumHeight(self.heading.fontMetrics().lineSpacing() * 2 + 4)
        self.heading.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.warnings = QLabel()
        self.warnings.setObjectName("collapseWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("background: #fff4d6; border: 1px solid #e0b84c; padding: 6px; color: #5a4300")
        self.warnings.hide()
        self.evaluate_button = QPushButton("Evaluate now")
        self.evaluate_button.setObjectName("evaluateButton")
        self.evaluate_button.setToolTip("Evaluate the run's adapter (and the original model if needed) "
                                        "with the project's evaluation suite")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.evaluate_button.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("evaluationProgress")
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelEvaluationButton")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.every = QCheckBox("Every metric")
        self.every.setToolTip("Off: the headline metrics a person reads first; on: every measured metric")
        self.every.toggled.connect(lambda _: self.report is not None and self._fill_table(self.report))

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setObjectName("beforeAfterTable")
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for column in (0, 4):  # the metric's name and its target, in words, share the spare width
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        table_panel = QWidget()
        table_layout = QVBoxLayout(table_panel)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.every, 0, Qt.AlignmentFlag.AlignRight)
        table_layout.addWidget(self.table, 1)

        self.answer_set = QComboBox()
        self.answer_set.setObjectName("answerSet")
        self.answer_set.currentTextChanged.connect(self._show_answers)
        self.answer_note = QLabel()
        self.answer_note.setWordWrap(True)
        self.answers = QTableWidget(0, len(ANSWER_COLUMNS))
        self.answers.setObjectName("answersTable")
        self.answers.setHorizontalHeaderLabels(ANSWER_COLUMNS)
        self.answers.verticalHeader().setVisible(False)
        self.answers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.answers.setWordWrap(True)
        self.answers.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        answers_panel = QWidget()
        answers_layout = QVBoxLayout(answers_panel)
        row = QHBoxLayout()
        row.addWidget(QLabel("Data set:"))
        row.addWidget(self.answer_set)
        row.addWidget(self.answer_note, 1)
        answers_layout.addLayout(row)
        answers_layout.addWidget(self.answers, 1)

        self.frontier = FrontierPlot()
        self.tabs = QTabWidget()
        self.tabs.addTab(table_panel, "Before / after")
        self.tabs.addTab(answers_panel, "Answers per item")
        self.tabs.addTab(self.frontier, "Frontier")

        layout = work_header(self, self.heading, self.evaluate_button, self.progress, self.cancel_button)
        layout.addWidget(self.warnings)
        layout.addWidget(self.tabs, 1)

    # ---- loading ---------------------------------------------------------------------------------

    def set_run(self, store, run_id: str) -> None:
        """Show ``run_id``'s evaluation (read in the background)."""
        self.store, self.run_id = store, run_id
        self.heading.setText("Reading the evaluation…")
        self._set_busy(False)
        self._job.start(lambda ctx: _load_report(store, run_id, ctx), self._show_loaded, self._failed,
                        name=f"Reading the evaluation of run {run_id[:8]}")

    def evaluate(self) -> None:
        """Evaluate the selected run now (a run stopped and saved has no "after" numbers)."""
        if self.store is None or not self.run_id or self.store.readonly:
            return
        store, run_id = self.store, self.run_id
        self.heading.setText("Evaluating… (the original model's numbers come from the cache when they can)")
        self._set_busy(True)
        self._job.start(lambda ctx: _evaluate(store, run_id, ctx), self._show_loaded, self._failed,
                        on_item=self._show_progress, on_cancelled=self._cancelled, cancellable=True,
                        name=f"Evaluating run {run_id[:8]}")

    def cancel(self) -> None:
        if self._job.job is not None and self._job.job.running:
            self._job.job.cancel()
            self.cancel_button.setEnabled(False)
            self.heading.setText("Cancelling the evaluation after this batch…")

    def _set_busy(self, busy: bool) -> None:
        for widget in (self.progress, self.cancel_button):
            widget.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.evaluate_button.setEnabled(not busy)
        self.progress.setRange(0, 0)

    def _show_progress(self, event) -> None:
        """An EvaluationProgressEvent: items done of the set being measured, and the time left."""
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(min(event.done, max(event.total, 1)))
        self.progress.setFormat(f"{event.set_name}: %v of %m items")
        left = f", about {duration_text(event.eta_s)} left" if event.eta_s is not None else ""
        self.heading.setText(f"Evaluating {PHASES.get(event.phase, '')}: {event.set_name}, {event.done} of "
                             f"{event.total} items{left}.")

    def _cancelled(self) -> None:
        self._set_busy(False)
        self.heading.setText("The evaluation was cancelled; nothing was recorded. Evaluate now starts it again.")
        self.evaluate_button.show()

    def _failed(self, error: Exception, trace: str) -> None:
        self._set_busy(False)
        self.heading.setText(f"No evaluation: {getattr(error, 'problem', error)}")
        self.shown.emit()

    def _show_loaded(self, loaded) -> None:
        report, self.before_rows = loaded
        self.show_report(report)

    # ---- showing ---------------------------------------------------------------------------------

    def show_report(self, report) -> None:
        self.report = report
        self._set_busy(False)
        finished = report.status in ("finished", "stopped")
        can_evaluate = finished and self.store is not None and not self.store.readonly
        self.evaluate_button.setVisible(can_evaluate and not report.complete)
        judgement = report.judgement
        if judgement is not None:
            self.heading.setText(f"{report.suite} suite: {judgement.summary_line()}. Before: the original model "
                                 "(adapter off); after: the unlearned model. Hover a metric for what it means.")
        elif report.complete:
            self.heading.setText(f"Measured before and after, but not judged: {report.note}")
        elif report.before and report.status in RUNNING:
            self.heading.setText(f"Before training: {len(self.before_rows) or len(report.before)} metrics measured "
                                 "(below); the numbers after training, and their verdicts, appear when the run "
                                 "finishes.")
        elif finished:
            self.heading.setText("This run has no before/after evaluation yet"
                                 + (" (it was stopped before the end)." if report.status == "stopped" else ".")
                                 + " Evaluate it now to compare the unlearned model with the original.")
        elif report.status in RUNNING:
            self.heading.setText(f"The run is {report.status}: its evaluation before training shows here once it "
                                 "is measured, the one after training when the run finishes.")
        else:
            self.heading.setText(f"The run {report.status} before its evaluation after training.")
        self._fill_table(report)
        self._fill_answer_sets(report)
        self._draw_frontier(report)
        if report.warnings:
            self.warnings.setText("⚠ Possible collapse: " + "; ".join(report.warnings)
                                  + ". Try a lower learning rate, fewer steps or a stronger retain term.")
        self.warnings.setVisible(bool(report.warnings))
        self.shown.emit()

    def _fill_table(self, report) -> None:
        judgement = report.judgement
        if judgement is not None:
            rows = judgement.rows if self.every.isChecked() else judgement.headline
        else:
            rows = self.before_rows  # before training only: the value and its interval
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            tooltip = metric_tooltip(row.key, row.label, row.meaning, row.ideal)
            judged = judgement is not None
            verdict = f"{MARKS[row.verdict]} {VERDICTS[row.verdict]}" if row.verdict else DASH
            cells = (_item(row.label, tooltip),
                     _item(metric_value(row.key, row.before if judged else row.after), None, True),
                     _item(metric_value(row.key, row.after) if judged else DASH, None, True),
                     _item(change_text(row) if judged else DASH, None, True),
                     _item(target_text(row)), _item(verdict + (f" ({row.note})" if row.note else "")))
            colour = VERDICT_COLOURS.get(row.verdict)
            for column, item in enumerate(cells):
                if colour is not None:
                    item.setBackground(QBrush(QColor(colour)))
                    item.setForeground(QBrush(QColor("#1a1a1a")))
                self.table.setItem(r, column, item)
        self.table.resizeRowsToContents()

    def _fill_answer_sets(self, report) -> None:
        self.answer_set.blockSignals(True)
        self.answer_set.clear()
        self.answer_set.addItems(list(report.items))
        self.answer_set.blockSignals(False)
        self._show_answers(self.answer_set.currentText())

    def _show_answers(self, name: str) -> None:
        pairs = self.report.items.get(name, []) if self.report is not None else []
        self.answers.setRowCount(len(pairs))
        for r, pair in enumerate(pairs):
            self.answers.setItem(r, 0, _item(pair.question))
            self.answers.setItem(r, 1, _item(pair.reference))
            for column, text, correct in ((2, pair.before, pair.before_correct), (3, pair.after, pair.after_correct)):
                item = _item(text or DASH)
                if correct is not None:
                    item.setForeground(QBrush(RIGHT_COLOUR if correct else WRONG_COLOUR))
                    item.setToolTip(f"{text}\n\n({'gives' if correct else 'does not give'} the reference value)")
                self.answers.setItem(r, column, item)
        self.answers.resizeRowsToContents()
        method = self.report.method if self.report is not None else ""
        if pairs:
            note = f"{len(pairs)} greedy answers; green gives the reference value, red does not."
            if method == "rmu":
                note += (" RMU scrambles the model's inner state on forget questions, so its answers there are "
                         "often repeated filler words: that is how RMU forgets, not a fault.")
            self.answer_note.setText(note)
        else:
            self.answer_note.setText("No per-item answers (they appear after a before/after evaluation).")

    def _draw_frontier(self, report) -> None:
        points = [Point(p.run_id, p.label, p.utility, p.forget_quality, p.on_frontier) for p in report.frontier]
        self.frontier.show_points(points, report.run_id)
        if report.after and not any(p.key == report.run_id for p in points):
            self.frontier.note.setText("This run has no forget-quality number: it needs a reference model, one "
                                       "trained without the forget data (evaluation.reference_model in the project; "
                                       "\"demo\" on the built-in demo).")
        elif len(points) < 2:
            self.frontier.note.setText("Each evaluated run of this project is a point; the frontier (orange) "
                                       "appears once there are two or more, e.g. after a sweep (Run ▸ Sweep…).")
        else:
            self.frontier.note.setText(f"{len(points)} evaluated runs; orange points are on the frontier (no "
                                       "other run keeps more and forgets better); the outlined one is this run.")
