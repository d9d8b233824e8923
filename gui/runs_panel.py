"""The runs of the open project and the selected run's details: live monitor (or its recorded
curves), its evaluation, and the comparison panel."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from .evaluation_view import EvaluationView
from .monitor import RunMonitor
from .runs_table import RunsTable
from .worker import JobRunner


class RunsPanel(QWidget):
    selection_changed = Signal()

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.store = None
        self.project_id: int | None = None
        self.live = None  # the RunSession of the run in progress, if any
        self.compare = None  # ComparePanel, created when first needed

        self.table = RunsTable()
        self.table.selection_changed.connect(self._selection_changed)
        self.empty = QLabel("No runs yet. Start one with Run ▸ New run… (Ctrl+N).")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #666")
        table_panel = QWidget()
        table_layout = QVBoxLayout(table_panel)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.empty)

        self.monitor = RunMonitor()
        self.evaluation = EvaluationView(jobs)
        self.evaluation.shown.connect(self.refresh)  # new numbers reach the runs table's metric columns
        self.details = QTabWidget()
        self.details.setObjectName("runDetails")
        self.details.addTab(self.monitor, "Monitor")
        self.details.addTab(self.evaluation, "Evaluation")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(table_panel)
        split.addWidget(self.details)
        split.setSizes([170, 520])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ---- contents ----------------------------------------------------------------------------------

    def show_project(self, store, project_id: int | None) -> None:
        self.store, self.project_id = store, project_id
        self.refresh()
        ids = self.table.run_ids()
        live = self.live.run_id if self.live is not None and self.live.running else None
        if live in ids:
            self.table.select_runs([live])
        elif ids:
            self.table.select_runs([ids[0]])
        else:
            self._selection_changed()

    def refresh(self) -> None:
        runs = self.store.runs(self.project_id) if self.store is not None and self.project_id is not None else []
        self.table.show_runs(self.store, runs)
        self.empty.setVisible(not runs)

    def selected_runs(self) -> list[dict]:
        if self.store is None:
            return []
        return [self.store.run(run_id) for run_id in self.table.selected_run_ids()]

    def follow(self, session) -> None:
        """Show a run being started; it is selected once its id is known."""
        self.live = session
        self.monitor.attach(session)
        self.details.setCurrentWidget(self.monitor)

    def select_run(self, run_id: str, *, reload: bool = False) -> None:
        """Select ``run_id``; ``reload`` shows its details afresh even if it was selected already."""
        self.refresh()
        before = self.table.selected_run_ids()
        self.table.select_runs([run_id])
        if reload and before == [run_id]:
            self._selection_changed()

    def _selection_changed(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            run = runs[0]
            if self.live is not None and self.live.run_id == run["id"] and self.live.running:
                if self.monitor.session is not self.live:
                    self.monitor.show_history(self.store, run)  # what was recorded while another run was shown
                    self.monitor.attach(self.live, keep=True)
            elif self.monitor.followed != run["id"]:  # a run just followed live keeps its log on screen
                self.monitor.show_history(self.store, run)
            self.evaluation.set_run(self.store, run["id"])
            self._compare(run["id"])
        elif len(runs) == 2:
            self._compare(runs[0]["id"], runs[1]["id"])
        elif not runs and not (self.live is not None and self.live.running):
            self.monitor.detach()
            self.monitor.clear()
            self.monitor.status.setText("No run selected")
        self.selection_changed.emit()

    def _compare(self, run_a: str, run_b: str | None = None) -> None:
        """Point the comparison panel (another module, loaded when present) at the selected run(s)."""
        if self.compare is None:
            try:
                from .compare_panel import ComparePanel
            except ImportError:
                return
            self.compare = ComparePanel(self.jobs)
            self.details.addTab(self.compare, "Compare")
        run = self.store.run(run_a)
        if run_b is not None:
            self.compare.set_runs(self.store, run_a, run_b)
            self.details.setCurrentWidget(self.compare)
        elif run["status"] in ("finished", "stopped"):
            self.compare.set_run(self.store, run_a)
