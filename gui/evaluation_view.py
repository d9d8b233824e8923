"""A run's evaluation: the before/after table coloured by whether each metric moved the way
unlearning wants, the original and unlearned answers per item, the project's forget-quality /
utility frontier, and collapse warnings. The report is read (and, on request, computed) in the
background; this widget only shows it."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .worker import JobRunner

OK_COLOUR, BAD_COLOUR = QColor("#dff3e3"), QColor("#f9dcdc")
RIGHT_COLOUR, WRONG_COLOUR = QColor("#1b7f3b"), QColor("#b3261e")
EXPECTED = {"down": "should fall", "up": "should rise", "hold": "should hold"}
VERDICT = {"ok": "✓ as wanted", "bad": "✗ the wrong way", "": "–"}
TABLE_COLUMNS = ("Metric", "Before", "After", "Change", "Expected", "Verdict")
ANSWER_COLUMNS = ("Question", "Reference answer", "Original model", "Unlearned model")


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}"


def _item(text: str, tooltip: str | None = None, align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setToolTip(tooltip if tooltip is not None else text)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class EvaluationView(QWidget):
    shown = Signal()  # a report (or its absence) is on screen
    failed = Signal(str, object, str)  # run id, the exception, its traceback

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.store = None
        self.run_id = ""
        self.report = None
        self._request = 0

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

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setObjectName("beforeAfterTable")
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

        self.answer_set = QComboBox()
        self.answer_set.setObjectName("answerSet")
        self.answer_set.currentTextChanged.connect(self._show_answers)
        self.answer_note = QLabel()
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

        self.frontier = pg.PlotWidget()
        self.frontier.setObjectName("frontierPlot")
        self.frontier.setTitle("Runs of this project: forget quality against model utility", size="10pt")
        self.frontier.setLabel("bottom", "model utility (higher keeps more)")
        self.frontier.setLabel("left", "forget quality, log10 p (higher forgets better)")
        self.frontier.showGrid(x=True, y=True, alpha=0.25)
        for side in ("left", "bottom"):
            self.frontier.getAxis(side).enableAutoSIPrefix(False)
        self.frontier.getAxis("left").setWidth(64)
        self.frontier_note = QLabel()
        self.frontier_note.setWordWrap(True)
        frontier_panel = QWidget()
        frontier_layout = QVBoxLayout(frontier_panel)
        frontier_layout.addWidget(self.frontier_note)
        frontier_layout.addWidget(self.frontier, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Before / after")
        self.tabs.addTab(answers_panel, "Answers per item")
        self.tabs.addTab(frontier_panel, "Frontier")

        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.evaluate_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.warnings)
        layout.addWidget(self.tabs, 1)

    # ---- loading ---------------------------------------------------------------------------------

    def set_run(self, store, run_id: str) -> None:
        """Show ``run_id``'s evaluation (read in the background)."""
        self.store, self.run_id = store, run_id
        self.heading.setText("Reading the evaluation…")
        self._request += 1
        request = self._request

        def load():
            from unlearn_studio.core.results.report import load_run_report

            return load_run_report(store, run_id)

        self.jobs.start(load, lambda report: self._loaded(request, report),
                        lambda error, trace: self._failed(request, error, trace))

    def evaluate(self) -> None:
        """Evaluate the selected run now (a run stopped and saved has no "after" numbers)."""
        if self.store is None or not self.run_id or self.store.readonly:
            return
        store, run_id = self.store, self.run_id
        self._request += 1
        request = self._request
        self.evaluate_button.setEnabled(False)
        self.heading.setText("Evaluating… (the original model's numbers come from the cache when they can)")

        def work():
            from unlearn_studio.core.results.report import evaluate_run

            return evaluate_run(store, run_id)

        self.jobs.start(work, lambda report: self._loaded(request, report),
                        lambda error, trace: self._failed(request, error, trace))

    def _loaded(self, request: int, report) -> None:
        if request == self._request:
            self.show_report(report)

    def _failed(self, request: int, error: Exception, trace: str) -> None:
        if request == self._request:
            self.evaluate_button.setEnabled(True)
            self.heading.setText(f"No evaluation: {error}")
            self.failed.emit(self.run_id, error, trace)
            self.shown.emit()

    # ---- showing ---------------------------------------------------------------------------------

    def show_report(self, report) -> None:
        self.report = report
        can_evaluate = report.status in ("finished", "stopped") and self.store is not None and not self.store.readonly
        self.evaluate_button.setEnabled(True)
        self.evaluate_button.setVisible(can_evaluate and not report.complete)
        if report.complete:
            ok = sum(c.verdict == "ok" for c in report.comparisons)
            self.heading.setText(f"{report.suite} suite: {ok} of {len(report.comparisons)} headline metrics moved "
                                 "as unlearning wants (green), the others did not (red). Before: the original "
                                 "model (adapter off); after: the unlearned model.")
        elif report.status in ("finished", "stopped"):
            self.heading.setText("This run has no before/after evaluation yet"
                                 + (" (it was stopped before the end)." if report.status == "stopped" else ".")
                                 + " Evaluate it now to compare the unlearned model with the original.")
        else:
            self.heading.setText(f"The run is {report.status}; its evaluation appears when it finishes.")
        self._fill_table(report)
        self._fill_answer_sets(report)
        self._draw_frontier(report)
        if report.warnings:
            self.warnings.setText("⚠ Possible collapse: " + "; ".join(report.warnings)
                                  + ". Try a lower learning rate, fewer steps or a stronger retain term.")
        self.warnings.setVisible(bool(report.warnings))
        self.shown.emit()

    def _fill_table(self, report) -> None:
        self.table.setRowCount(len(report.comparisons))
        for r, c in enumerate(report.comparisons):
            change = c.after - c.before
            cells = (_item(c.label, c.key), _item(_number(c.before), None, True), _item(_number(c.after), None, True),
                     _item(("+" if change > 0 else "") + _number(change), None, True),
                     _item(EXPECTED[c.expected]), _item(VERDICT[c.verdict]))
            colour = {"ok": OK_COLOUR, "bad": BAD_COLOUR}.get(c.verdict)
            for column, item in enumerate(cells):
                if colour is not None:
                    item.setBackground(QBrush(colour))
                    item.setForeground(QBrush(QColor("#1a1a1a")))
                self.table.setItem(r, column, item)

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
                item = _item(text or "–")
                if correct is not None:
                    item.setForeground(QBrush(RIGHT_COLOUR if correct else WRONG_COLOUR))
                    item.setToolTip(f"{text}\n\n({'gives' if correct else 'does not give'} the reference value)")
                self.answers.setItem(r, column, item)
        self.answers.resizeRowsToContents()
        if pairs:
            self.answer_note.setText(f"{len(pairs)} greedy answers; green gives the reference value, red does not.")
        else:
            self.answer_note.setText("No per-item answers (they appear after a before/after evaluation).")

    def _draw_frontier(self, report) -> None:
        plot = self.frontier
        plot.clear()
        points = report.frontier
        for p in points:
            current = p.run_id == report.run_id
            brush = "#ff7f0e" if p.on_frontier else "#1f77b4"
            scatter = pg.ScatterPlotItem([p.utility], [p.forget_quality], size=14 if current else 9,
                                         brush=pg.mkBrush(brush),
                                         pen=pg.mkPen("#111", width=2) if current else pg.mkPen(None))
            plot.addItem(scatter)
            label = pg.TextItem(p.label + (" (this run)" if current else ""), color="#333", anchor=(0, 1))
            label.setPos(p.utility, p.forget_quality)
            plot.addItem(label)
        frontier = sorted((p.utility, p.forget_quality) for p in points if p.on_frontier)
        if len(frontier) > 1:
            plot.plot([x for x, _ in frontier], [y for _, y in frontier], pen=pg.mkPen("#ff7f0e", width=1.5))
        if points:
            xs, ys = [p.utility for p in points], [p.forget_quality for p in points]
            # A lone point (or a tight cluster) gets a readable range around it, not a zoom into noise.
            plot.setXRange(min(xs) - max(0.05, (max(xs) - min(xs)) * 0.15), max(xs) + max(0.05, (max(xs) - min(xs)) * 0.15))
            plot.setYRange(min(ys) - max(0.5, (max(ys) - min(ys)) * 0.15), max(ys) + max(0.5, (max(ys) - min(ys)) * 0.15))
        if len(points) < 2:
            self.frontier_note.setText("Each evaluated run of this project is a point; the frontier (orange) "
                                       "appears once there are two or more, e.g. after a sweep "
                                       "(unlearn-studio sweep PROJECT.toml --grid lr=1e-4,5e-4).")
        else:
            self.frontier_note.setText(f"{len(points)} evaluated runs; orange points are on the frontier "
                                       "(no other run keeps more and forgets better); the outlined one is this run.")
