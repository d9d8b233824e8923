"""A sweep in progress: its points as runs in the queue, and a view that fills in as each run ends
(its status, model utility and forget quality, and the frontier drawn again)."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.sweep import FRONTIER_X, FRONTIER_Y, SweepPoint, mark_frontier, with_values
from unlearn_studio.gui.frontier_plot import FrontierPlot, Point
from unlearn_studio.gui.numbers import DASH, number, setting

WAITING, RUNNING, REMOVED = "waiting", "running", "removed"
ENDED = ("finished", "stopped", "failed", "cancelled", REMOVED, "did not start")


def values_text(point: SweepPoint) -> str:
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={setting(value)}" for key, value in point.values.items())


class Sweep(QObject):
    """The points of one sweep and where each stands; ``changed`` after every update."""

    changed = Signal()
    finished = Signal()

    def __init__(self, window, config: RunConfig, points: list[SweepPoint], project_path: Path):
        super().__init__(window)
        self.window = window
        self.config = config
        self.points = points
        self.project_path = project_path
        self.view = SweepView(self)
        for point in points:
            point.status = WAITING
        window.manager.run_started.connect(self._run_started)
        window.manager.run_ended.connect(self._run_ended)
        window.queue.changed.connect(self._queue_changed)

    def start(self) -> None:
        """Queue every point (the first starts at once unless a run trains) and show the sweep."""
        n = len(self.points)
        for number_, point in enumerate(self.points, 1):
            self.window.manager.start_run(with_values(self.config, point.values), project_path=self.project_path,
                                          label=f"sweep {number_} of {n}: {values_text(point)}", sweep=self, point=point)
        details = self.window.runs.details
        details.addTab(self.view, "Sweep")
        details.setCurrentWidget(self.view)
        self.changed.emit()

    def done(self) -> int:
        return sum(p.status in ENDED for p in self.points)

    def stop(self) -> None:
        """Take the sweep's waiting runs out of the queue (a run in progress goes on)."""
        queue = self.window.queue
        for index in reversed(range(len(queue))):
            if queue.items[index].sweep is self:
                queue.remove(index)

    def _mine(self, session) -> SweepPoint | None:
        queued = session.queued
        return queued.point if queued is not None and queued.sweep is self else None

    def _run_started(self, session) -> None:
        point = self._mine(session)
        if point is not None:
            point.status = RUNNING
            self.changed.emit()

    def _run_ended(self, session, result) -> None:
        point = self._mine(session)
        if point is None:
            return
        point.run_id = session.run_id
        point.status = result.status if result is not None else "did not start"
        store = self.window.store
        if store is not None and point.run_id:
            after = [e for e in store.evaluations(point.run_id) if e["phase"] == "after"]
            if after:
                found = {key: after[-1]["aggregates"].get(key) for key in (FRONTIER_X, FRONTIER_Y)}
                point.metrics = {k: v for k, v in found.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        mark_frontier(self.points)
        self._report()

    def _queue_changed(self) -> None:
        queued = {id(item.point) for item in self.window.queue.items if item.sweep is self}
        running = self.window.manager.session
        current = self._mine(running) if running is not None and running.running else None
        for point in self.points:
            if point.status == WAITING and id(point) not in queued and point is not current:
                point.status = REMOVED
        self._report()

    def _report(self) -> None:
        self.changed.emit()
        if self.done() == len(self.points):
            self.window.manager.run_started.disconnect(self._run_started)
            self.window.manager.run_ended.disconnect(self._run_ended)
            self.window.queue.changed.disconnect(self._queue_changed)
            self.finished.emit()


class SweepView(QWidget):
    def __init__(self, sweep: Sweep, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sweepView")
        self.sweep = sweep
        self.keys = list(dict.fromkeys(k for p in sweep.points for k in p.values))
        self.heading = QLabel()
        self.heading.setObjectName("sweepHeading")
        self.heading.setWordWrap(True)
        self.stop_button = QPushButton("Stop the sweep")
        self.stop_button.setToolTip("Take its waiting runs out of the queue; the run in progress goes on")
        self.stop_button.clicked.connect(sweep.stop)
        columns = ["#", *(key.rsplit(".", 1)[-1] for key in self.keys), "Status", "Utility", "Forget quality",
                   "Frontier"]
        self.table = QTableWidget(len(sweep.points), len(columns))
        self.table.setObjectName("sweepTable")
        self.table.setHorizontalHeaderLabels(columns)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.frontier = FrontierPlot()
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(self.frontier)
        split.setSizes([380, 420])
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        sweep.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        points = self.sweep.points
        done = self.sweep.done()
        self.heading.setText(f"Sweep over {' × '.join(k.rsplit('.', 1)[-1] for k in self.keys)}: {done} of "
                             f"{len(points)} runs done. Each point joins the frontier when its run is evaluated.")
        self.stop_button.setEnabled(done < len(points))
        for row, point in enumerate(points):
            x, y = point.metrics.get(FRONTIER_X), point.metrics.get(FRONTIER_Y)
            cells = [str(row + 1), *(setting(point.values.get(key)) for key in self.keys)]
            cells += [point.status, number(x), number(y), "yes" if point.on_frontier else (DASH if x is None else "")]
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        # Points are numbered as the table's rows: names beside points that lie close together overlap.
        scored = [Point(p.run_id, str(number_), p.metrics[FRONTIER_X], p.metrics[FRONTIER_Y], p.on_frontier)
                  for number_, p in enumerate(points, 1) if FRONTIER_X in p.metrics and FRONTIER_Y in p.metrics]
        self.frontier.show_points(scored)
        self.frontier.note.setText(f"{len(scored)} of {len(points)} points evaluated (numbered as in the table); "
                                   "orange points are on the frontier (no other run keeps more and forgets better).")
