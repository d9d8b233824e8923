"""Python's garbage collector in a Qt application with worker threads.

1. Collections run on the GUI thread only. Left automatic, a collection starts in whichever thread
   happens to allocate, and a cycle holding a Qt object (a closed window's widgets, say) is then
   destroyed in a worker: its QObject destructor takes a Qt lock and waits for the GIL while the GUI
   thread, holding the GIL, waits for that lock (seen as a frozen window and a run stuck in its data
   loading). As pyqtgraph's GarbageCollector does, automatic collection is switched off and a timer
   on the GUI thread collects each generation once it passes the interpreter's own threshold.
2. Full collections stay out of a training run. Once torch, transformers and a model are loaded the
   process holds about half a million objects, and a full (generation 2) collection walks them all
   while holding the GIL: about 300 ms in which the window cannot repaint or react. ``gc.freeze``
   moves the objects that exist when a run starts training out of the collector's reach; when the
   last run ends ``gc.unfreeze`` gives them back, so cycles among them (a discarded model's) are
   still collected afterwards.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

CHECK_EVERY_MS = 500

_holders = 0
_holders_lock = threading.Lock()  # runs hold and release from their own threads


class _MainThreadCollector(QObject):
    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect_due)
        self.timer.start(CHECK_EVERY_MS)

    def collect_due(self) -> None:
        """The generations the interpreter would have collected by now (its own thresholds)."""
        young, middle, old = gc.get_count()
        if young > self.thresholds[0]:
            generation = 0
            if middle > self.thresholds[1]:
                generation = 2 if old > self.thresholds[2] else 1
            gc.collect(generation)


def install(app: QApplication) -> None:
    """Collect on ``app``'s thread from now on (once per application; call it before any worker starts)."""
    if app.findChild(_MainThreadCollector) is None:
        gc.disable()
        _MainThreadCollector(app)


def hold() -> None:
    """A run started training: freeze what exists (again, for each run, to include its model)."""
    global _holders
    with _holders_lock:
        _holders += 1
        gc.freeze()


def release() -> None:
    """A run ended: once none is training, the frozen objects go back to the collector."""
    global _holders
    with _holders_lock:
        _holders = max(0, _holders - 1)
        if _holders == 0:
            gc.unfreeze()
