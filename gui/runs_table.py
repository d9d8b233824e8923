"""The runs of a project: status, method, key metrics after unlearning, start and duration; sortable."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

RUN_ID_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
# (column title, aggregate key after unlearning, tooltip)
KEY_METRICS = (
    ("Forget acc.", "forget/value_acc", "forget set: share of answers that still give the value (lower is better)"),
    ("Retain acc.", "retain/value_acc", "retain set: share of answers that give the value (should hold)"),
    ("Utility", "model_utility", "model utility after unlearning (should hold)"),
)
COLUMNS = ("Status", "Method", *(title for title, _, _ in KEY_METRICS), "Started", "Duration")
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


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class RunsTable(QTableView):
    selection_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runsTable")
        self.model_ = QStandardItemModel(0, len(COLUMNS), self)
        self.model_.setHorizontalHeaderLabels(COLUMNS)
        for column, (_, _, tip) in enumerate(KEY_METRICS, start=2):
            self.model_.horizontalHeaderItem(column).setToolTip(tip)
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
        now = datetime.now(timezone.utc)
        for run in runs:
            after = [e for e in store.evaluations(run["id"]) if e["phase"] == "after"]
            aggregates = after[-1]["aggregates"] if after else {}
            started, ended = _time(run["started"] or run["created"]), _time(run["ended"])
            seconds = None
            if started is not None:
                end = ended or (now if run["status"] in ("running", "paused") else None)
                seconds = (end - started).total_seconds() if end is not None else None
            cells = [self._cell(run["status"], run["status"]), self._cell(run["method"] or "", run["method"] or "")]
            cells[0].setForeground(QBrush(QColor(STATUS_COLOURS.get(run["status"], "#333"))))
            cells[0].setToolTip(run.get("error") or run["status"])
            cells[1].setToolTip(f"{run['name']}\nrun {run['id']}\n{run.get('output_dir') or ''}")
            for _, key, _ in KEY_METRICS:
                value = aggregates.get(key)
                shown = "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
                cells.append(self._cell(shown, -math.inf if shown == "–" else float(value), right=True))
            cells.append(self._cell(started.astimezone().strftime("%Y-%m-%d %H:%M") if started else "–",
                                    started.timestamp() if started else 0.0))
            cells.append(self._cell(duration_text(seconds), seconds if seconds is not None else -1.0, right=True))
            for cell in cells:
                cell.setData(run["id"], RUN_ID_ROLE)
            self.model_.appendRow(cells)
        self.setSortingEnabled(True)
        self.select_runs(selected)
        self._quiet = False
        self._selection_moved()

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
