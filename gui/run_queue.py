"""Runs waiting their turn: the app trains one run at a time (one copy of the weights in memory), so
a run asked for while another trains waits here and starts when the one before ends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from unlearn_studio.core.project.config import RunConfig


@dataclass
class QueuedRun:
    config: RunConfig
    project_path: Path  # the project file the run belongs to (its runs are listed there)
    label: str  # what the queue list shows
    sweep: object | None = None  # the sweep this run is a point of (gui/sweep.py), if any
    point: object | None = None  # its SweepPoint


class RunQueue(QObject):
    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.items: list[QueuedRun] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: QueuedRun) -> None:
        self.items.append(item)
        self.changed.emit()

    def remove(self, index: int) -> QueuedRun:
        item = self.items.pop(index)
        self.changed.emit()
        return item

    def move_up(self, index: int) -> None:
        if 0 < index < len(self.items):
            self.items[index - 1], self.items[index] = self.items[index], self.items[index - 1]
            self.changed.emit()

    def clear(self) -> list[QueuedRun]:
        dropped, self.items = self.items, []
        self.changed.emit()
        return dropped
