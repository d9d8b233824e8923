"""The one place where work crosses threads: background jobs report back through Qt signals.

A job is a plain callable from core/; it runs on the thread pool, and its result or exception
comes back as a queued signal, so widgets are only ever touched on the GUI thread. A streaming
job also gets a ``report(item)`` function: each item (an engine event, a generated token, …)
reaches ``on_item`` on the GUI thread, in order, before the job's result.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot


class JobSignals(QObject):
    finished = Signal(int, object)  # job id, result
    failed = Signal(int, object, str)  # job id, the exception, its traceback as text for the log
    item = Signal(int, object)  # job id, one item a streaming job reported


class BackgroundJob(QRunnable):
    """Runs ``function()`` on the pool and reports through ``signals`` (which live on the GUI thread)."""

    def __init__(self, job_id: int, function: Callable[[], Any], signals: JobSignals):
        super().__init__()
        self.job_id = job_id
        self.function = function
        self.signals = signals

    def run(self) -> None:
        try:
            result = self.function()
        except Exception as error:  # every failure is reported to the GUI, none is swallowed
            self.signals.failed.emit(self.job_id, error, traceback.format_exc())
        else:
            self.signals.finished.emit(self.job_id, result)


class JobRunner(QObject):
    """Starts background jobs; their callbacks run on the GUI thread (queued through this object's slots)."""

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self.signals = JobSignals(self)
        # Emitted from pool threads, received by this GUI-thread object: Qt queues the call.
        self.signals.finished.connect(self._deliver_result)
        self.signals.failed.connect(self._deliver_error)
        self.signals.item.connect(self._deliver_item)
        self._callbacks: dict[int, tuple[Callable[[Any], None], Callable[[Exception, str], None]]] = {}
        self._item_callbacks: dict[int, Callable[[Any], None]] = {}
        self._next_id = 0
        self._shut_down = False

    def start(self, function: Callable[[], Any], on_finished: Callable[[Any], None],
              on_failed: Callable[[Exception, str], None]) -> int:
        self._next_id += 1
        self._callbacks[self._next_id] = (on_finished, on_failed)
        self.pool.start(BackgroundJob(self._next_id, function, self.signals))
        return self._next_id

    def start_streaming(self, function: Callable[[Callable[[Any], None]], Any], on_item: Callable[[Any], None],
                        on_finished: Callable[[Any], None], on_failed: Callable[[Exception, str], None]) -> int:
        """Run ``function(report)`` in the background; every ``report(item)`` it makes calls
        ``on_item(item)`` on the GUI thread (queued, in order), then ``on_finished`` or ``on_failed``."""
        self._next_id += 1
        job_id, signals = self._next_id, self.signals

        def report(item: Any) -> None:
            signals.item.emit(job_id, item)

        self._callbacks[job_id] = (on_finished, on_failed)
        self._item_callbacks[job_id] = on_item
        self.pool.start(BackgroundJob(job_id, lambda: function(report), self.signals))
        return job_id

    @property
    def busy(self) -> bool:
        """Whether any job started here has not reported its end yet."""
        return bool(self._callbacks)

    def wait(self, msecs: int = -1) -> bool:
        """Wait for every started job (used when the window closes)."""
        return self.pool.waitForDone(msecs)

    def shut_down(self) -> None:
        """Wait for every job, then drop what they still report: the widgets and the store their
        callbacks would touch are being closed."""
        self.wait()
        self._shut_down = True
        self._callbacks.clear()
        self._item_callbacks.clear()

    @Slot(int, object)
    def _deliver_item(self, job_id: int, item: Any) -> None:
        if self._shut_down:
            return
        on_item = self._item_callbacks.get(job_id)
        if on_item is not None:
            on_item(item)

    @Slot(int, object)
    def _deliver_result(self, job_id: int, result: Any) -> None:
        if self._shut_down:
            return
        on_finished, _ = self._callbacks.pop(job_id)
        self._item_callbacks.pop(job_id, None)
        on_finished(result)

    @Slot(int, object, str)
    def _deliver_error(self, job_id: int, error: Exception, trace: str) -> None:
        if self._shut_down:
            return
        _, on_failed = self._callbacks.pop(job_id)
        self._item_callbacks.pop(job_id, None)
        on_failed(error, trace)
