"""The runs of the open project and the selected run's details: live monitor (or its recorded
curves; two selected runs overlaid), its evaluation, and the comparison panel; the runs waiting
in the queue."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.results.run_info import RunInfo, recorded_run, run_curves, run_info
from unlearn_studio.gui.audit_view import AuditView
from unlearn_studio.gui.evaluation_view import EvaluationView
from unlearn_studio.gui.jobs import Jobs, JobSlot
from unlearn_studio.gui.monitor import RunMonitor
from unlearn_studio.gui.run_queue import RunQueue
from unlearn_studio.gui.runs_table import RunsTable, run_label


class RunsPanel(QWidget):
    selection_changed = Signal()  # the selection changed, or what is known about it (``info``)
    history_shown = Signal()  # the selected run's recorded curves (or two runs' overlay) are shown

    def __init__(self, jobs: Jobs, queue: RunQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.queue = queue
        self.store = None
        self.project_id: int | None = None
        self.live = None  # the RunSession of the run in progress, if any
        self.compare = None  # ComparePanel, once the ML libraries are loaded
        self.info: RunInfo | None = None  # what core says about the one selected run
        self._history = JobSlot(jobs, parent=self)  # the selected run's record and curves (no ML library)
        self._info = JobSlot(jobs, parent=self)  # its checkpoints and adapter (their module imports torch)

        self.table = RunsTable()
        self.table.selection_changed.connect(self._selection_changed)
        self.empty = QLabel("No runs yet. Start one with Run ▸ New run… (Ctrl+N).")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #666")
        self.queue_list = QListWidget()
        self.queue_list.setObjectName("queueList")
        self.queue_list.setMaximumHeight(72)
        self.queue_title = QLabel()
        remove = QPushButton("Remove")
        remove.setObjectName("removeQueuedButton")
        remove.clicked.connect(self._remove_queued)
        up = QPushButton("Move up")
        up.clicked.connect(lambda: self.queue.move_up(self.queue_list.currentRow()))
        clear = QPushButton("Clear")
        clear.clicked.connect(self.queue.clear)
        self.queue_box = QWidget()
        queue_layout = QVBoxLayout(self.queue_box)
        queue_layout.setContentsMargins(0, 0, 0, 0)
        queue_row = QHBoxLayout()
        queue_row.addWidget(self.queue_title, 1)
        for button in (up, remove, clear):
            queue_row.addWidget(button)
        queue_layout.addLayout(queue_row)
        queue_layout.addWidget(self.queue_list)
        self.queue_box.hide()
        queue.changed.connect(self._show_queue)

        table_panel = QWidget()
        table_layout = QVBoxLayout(table_panel)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.empty)
        table_layout.addWidget(self.queue_box)

        self.monitor = RunMonitor()
        self.evaluation = EvaluationView(jobs)
        self.evaluation.shown.connect(self.refresh)  # new numbers reach the runs table's metric columns
        self.details = QTabWidget()
        self.details.setObjectName("runDetails")
        self.details.addTab(self.monitor, "Monitor")
        self.details.addTab(self.evaluation, "Evaluation")
        self.audit = AuditView(jobs)  # a finished run's robustness audit
        self.details.addTab(self.audit, "Audit")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(table_panel)
        split.addWidget(self.details)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 4)
        split.setSizes([130, 560])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ---- contents ----------------------------------------------------------------------------------

    def enable_compare(self) -> None:
        """The ML libraries have loaded: the comparison panel (which needs them) can be made."""
        if self.compare is not None:
            return
        from unlearn_studio.gui.compare_panel import ComparePanel  # imports torch: only once it has loaded

        self.compare = ComparePanel(self.jobs)
        self.details.addTab(self.compare, "Compare")
        if self.store is not None and self.selected_runs():
            self._point_compare(self.selected_runs())

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

    def follow(self, session, *, show: bool = True) -> None:
        """Follow a run being started (it is selected once its id is known); ``show`` brings the
        monitor to the front (a sweep's runs leave the sweep's view there)."""
        self.live = session
        self.monitor.attach(session)
        if show:
            self.details.setCurrentWidget(self.monitor)

    def select_run(self, run_id: str, *, reload: bool = False) -> None:
        """Select ``run_id``; ``reload`` shows its details afresh even if it was selected already."""
        self.refresh()
        before = self.table.selected_run_ids()
        self.table.select_runs([run_id])
        if reload and before == [run_id]:
            self._selection_changed()

    def _is_live(self, run_id: str) -> bool:
        return self.live is not None and self.live.running and self.live.run_id == run_id

    def _selection_changed(self) -> None:
        runs = self.selected_runs()
        self.info = None
        self._history.cancel()
        self._info.cancel()
        if len(runs) == 1:
            run = runs[0]
            if self._is_live(run["id"]):
                if self.monitor.session is not self.live:
                    # What was recorded while another run was shown, then the live events.
                    self.monitor.show_history(RunInfo(run, self.live.config), run_curves(self.store, run["id"]))
                    self.monitor.attach(self.live, keep=True)
            elif self.monitor.followed != run["id"]:  # a run just followed live keeps its log on screen
                self._load_history(run["id"])
            else:
                self._load_info(run["id"])
            self.evaluation.set_run(self.store, run["id"])
            self.audit.set_run(self.store, run["id"], run["status"])
        elif len(runs) == 2 and not any(self._is_live(run["id"]) for run in runs):
            self._load_overlay(runs)
        elif not runs and not (self.live is not None and self.live.running):
            self.monitor.detach()
            self.monitor.clear()
            self.monitor.status.setText("No run selected")
        self._point_compare(runs)
        self.selection_changed.emit()

    def _load_history(self, run_id: str) -> None:
        store = self.store
        self._history.start(lambda ctx: (recorded_run(store, run_id), run_curves(store, run_id)),
                            self._history_loaded, name=f"Reading the curves of run {run_id[:8]}", needs_ml=False)
        self._load_info(run_id)

    def _history_loaded(self, loaded) -> None:
        self.monitor.show_history(*loaded)
        if self.info is not None:
            self.monitor.resume_button.setVisible(self.info.resumable)
        self.history_shown.emit()

    def _load_info(self, run_id: str) -> None:
        store = self.store
        self._info.start(lambda ctx: run_info(store, run_id), self._info_loaded, name=f"Reading run {run_id[:8]}")

    def _info_loaded(self, info: RunInfo) -> None:
        self.info = info
        if self.monitor.run_id == info.run_id and self.monitor.session is None:
            self.monitor.resume_button.setVisible(info.resumable)
        self.selection_changed.emit()

    def _load_overlay(self, runs: list[dict]) -> None:
        store = self.store

        def read(ctx):
            return [(run_label(run), run_curves(store, run["id"]), recorded_run(store, run["id"]).total_steps)
                    for run in runs]

        self._history.start(read, self._overlay_loaded, name="Reading the curves of two runs", needs_ml=False)

    def _overlay_loaded(self, loaded) -> None:
        self.monitor.show_overlay(*loaded)
        self.history_shown.emit()

    def _point_compare(self, runs: list[dict]) -> None:
        """Point the comparison panel at the selected run(s), or say why it cannot compare them."""
        if self.compare is None:
            return
        if len(runs) == 2:
            self.compare.set_runs(self.store, runs[0]["id"], runs[1]["id"])
        elif len(runs) == 1:
            self.compare.set_run(self.store, runs[0]["id"])
        else:
            self.compare.clear("Select a finished run to compare it with the original model, or two runs "
                               "to compare them with each other.")

    # ---- the queue -------------------------------------------------------------------------------

    def _show_queue(self) -> None:
        self.queue_list.clear()
        for item in self.queue.items:
            self.queue_list.addItem(item.label)
        n = len(self.queue)
        self.queue_title.setText(f"Waiting to run ({n}), in this order: each starts when the one before ends.")
        self.queue_box.setVisible(bool(n))

    def _remove_queued(self) -> None:
        row = self.queue_list.currentRow()
        if 0 <= row < len(self.queue):
            self.queue.remove(row)
