"""Debounced background computations for wizard pages: only the newest request's answer is shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

from ..worker import JobRunner

DEBOUNCE_MS = 250


class LatestJob(QObject):
    """``request(fn)`` runs ``fn`` in the background after a short pause in typing; answers to
    older requests are dropped, so a slow answer never overwrites a newer one."""

    def __init__(self, jobs: JobRunner, on_result: Callable[[Any], None],
                 on_error: Callable[[Exception, str], None], parent: QObject | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.on_result, self.on_error = on_result, on_error
        self.generation = 0
        self.pending = False
        self._function: Callable[[], Any] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)

    def request(self, function: Callable[[], Any], *, now: bool = False) -> None:
        self.generation += 1
        self.pending = True
        self._function = function
        if now:
            self._timer.stop()
            self._start()
        else:
            self._timer.start()

    def cancel(self) -> None:
        """Forget the outstanding request: its answer will be dropped."""
        self.generation += 1
        self.pending = False
        self._timer.stop()

    def _start(self) -> None:
        generation, function = self.generation, self._function
        self.jobs.start(function, lambda result: self._done(generation, result),
                        lambda error, trace: self._failed(generation, error, trace))

    def _done(self, generation: int, result: Any) -> None:
        if generation == self.generation:
            self.pending = False
            self.on_result(result)

    def _failed(self, generation: int, error: Exception, trace: str) -> None:
        if generation == self.generation:
            self.pending = False
            self.on_error(error, trace)
