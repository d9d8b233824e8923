"""The runs of a project: status, method, key metrics after unlearning, start and duration (ticking
while a run trains); sortable."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from PySide6.QtCore import QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from unlearn_studio.gui.numbers import DASH, duration_text, number, share
from unlearn_studio.gui.words import is_share, metric_tooltip

RUN_ID_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
STARTED_ROLE = Qt.ItemDataRole.UserRole + 2  # a live run's start time, for its ticking duration
# (column title, aggregate key after unlearning)
KEY_METRICS = (("Forget acc.", "forget/value_acc"), ("Retain acc.", "retain/value_acc"), ("Utility", "model_utility"))
COLUMNS = ("Status", "Method", *(title for title, _ in KEY_METRICS), "Started", "Duration")
DURATION = COLUMNS.index("Duration")
LIVE = ("running", "paused")
STATUS_COLOURS = {
    "running": "#1f5fbf", "paused": "#8a6d00", "finished": "#1b7f3b", "stopped": "#1b7f3b",
    "failed": "#b3261e", "cancelled": "#6b6b6b", "interrupted": "#b3261e", "queued": "#6b6b6b",
}


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def run_label(row: dict) -> str:
    """'run 1a2b3c4d grad_diff': how a run is named in lists and titles."""
    return f"run {row['id'][:8]} {row['method'] or ''}".rstrip()


class RunsTable(QTableView):
    selection_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runsTable")
        self.model_ = QStandardItemModel(0, len(COLUMNS), self)
        self.model_.setHorizontalHeaderLabels(COLUMNS)
        for column, (title, key) in enumerate(KEY_METRICS, start=2):
            self.model_.horizontalHeaderItem(column).setToolTip(metric_tooltip(key) + "\n(after unlearning)")
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model_)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(COLUMNS.index("Started"), Qt.SortOrder.DescendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Method"), QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(90)  # a narrow window scrolls instead of squeezing "grad_diff" to "…"
        self._quiet = False  # rebuilding: the selection is restored, not changed
        self._last_selection: list[str] = []
        self.selectionModel().selectionChanged.connect(self._selection_moved)
        self._clock = QTimer(self)  # a live run's duration counts up while it trains
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)

    def _selection_moved(self, *_) -> None:
        if self._quiet:
            return
        current = self.selected_run_ids()
        if current != self._last_selection:
            self._last_selection = current
            self.selection_changed.emit()

    def show_runs(self, store, runs: list[dict]) -> None:
        """Fill the table; the selection is kept where the same runs are still listed."""
        selected = set(self.selected_run_ids())
        self._quiet = True
        self.setSortingEnabled(False)
        self.model_.removeRows(0, self.model_.rowCount())
        now = datetime.now(UTC)
        for run in runs:
            after = [e for e in store.evaluations(run["id"]) if e["phase"] == "after"]
            aggregates = after[-1]["aggregates"] if after else {}
            started, ended = _time(run["started"] or run["created"]), _time(run["ended"])
            seconds = None
            if started is not None:
                end = ended or (now if run["status"] in LIVE else None)
                seconds = (end - started).total_seconds() if end is not None else None
            cells = [self._cell(run["status"], run["status"]), self._cell(run["method"] or "", run["method"] or "")]
            cells[0].setForeground(QBrush(QColor(STATUS_COLOURS.get(run["status"], "#333"))))
            cells[0].setToolTip(run.get("error") or run["status"])
            cells[1].setToolTip(f"{run['name']}\nrun {run['id']}\n{run.get('output_dir') or ''}")
            for _, key in KEY_METRICS:
                value = aggregates.get(key)
                shown = share(value) if is_share(key) else number(value)
                cells.append(self._cell(shown, -math.inf if shown == DASH else float(value), right=True))
            cells.append(self._cell(started.astimezone().strftime("%Y-%m-%d %H:%M") if started else "–",
                                    started.timestamp() if started else 0.0))
            cells.append(self._cell(duration_text(seconds), seconds if seconds is not None else -1.0, right=True))
            if started is not None and not ended and run["status"] in LIVE:
                cells[DURATION].setData(started.timestamp(), STARTED_ROLE)
            for cell in cells:
                cell.setData(run["id"], RUN_ID_ROLE)
            self.model_.appendRow(cells)
        live = any(self.model_.item(r, DURATION).data(STARTED_ROLE) is not None for r in range(self.model_.rowCount()))
        self._clock.start() if live else self._clock.stop()
        self.setSortingEnabled(True)
        self.select_runs(selected)
        self._quiet = False
        self._selection_moved()

    def _tick(self) -> None:
        now = datetime.now(UTC).timestamp()
        for row in range(self.model_.rowCount()):
            cell = self.model_.item(row, DURATION)
            started = cell.data(STARTED_ROLE)
            if started is not None:
                cell.setText(duration_text(now - started))
                cell.setData(now - started, SORT_ROLE)

    @staticmethod
    def _cell(text: str, sort_value, right: bool = False) -> QStandardItem:
        item = QStandardItem(text)
        item.setData(sort_value, SORT_ROLE)
        item.setEditable(False)
        if right:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return item

    def run_ids(self) -> list[str]:
        """Run ids in the order shown."""
        return [self.proxy.index(r, 0).data(RUN_ID_ROLE) for r in range(self.proxy.rowCount())]

    def selected_run_ids(self) -> list[str]:
        rows = sorted({index.row() for index in self.selectionModel().selectedRows()})
        return [self.proxy.index(r, 0).data(RUN_ID_ROLE) for r in rows]

    def select_runs(self, run_ids) -> None:
        wanted = set(run_ids)
        quiet, self._quiet = self._quiet, True
        self.clearSelection()
        flags = self.selectionModel().SelectionFlag.Select | self.selectionModel().SelectionFlag.Rows
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data(RUN_ID_ROLE) in wanted:
                self.selectionModel().select(self.proxy.index(row, 0), flags)
        self._quiet = quiet
        self._selection_moved()
