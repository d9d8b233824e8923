"""The one place where work crosses threads: background jobs, their handles, and how their
results, progress and errors come back to the GUI thread.

A job is a function of one argument, its ``JobContext``: ``ctx.report(item)`` streams an item
(an engine event, a generated token, a progress message) to the GUI thread, in order and before
the result; ``ctx.progress(done, total, text)`` says how far it has come; ``ctx.should_stop()``
tells long work to end early (the same contract as the engine's ``RunControl``, which every job
carries as ``ctx.control``). Everything the job hands back arrives as a queued Qt signal, so
widgets are only ever touched on the GUI thread.

- Short jobs run on a thread pool; a run trains on a QThread of its own (``dedicated=True``), so
  a long run never holds a pool thread that previews, summaries and comparisons need.
- ``Jobs.start`` returns a ``Job``: ``cancel()`` asks the work to end (what it returns, or the
  ``Cancelled`` it raises, still arrives); ``discard()`` also drops whatever it still reports.
- ``JobSlot`` keeps one job per purpose: a new request discards the one before, so the newest
  result wins (optionally after a pause in typing).
- A failure reaches the job's ``on_failed`` (for the widget to tidy up) and, by default, the one
  error dialog and the log; a job whose widget shows its problems inline says ``errors="log"``.
- A job imports the ML libraries (torch, transformers, peft) before its function runs, one thread
  at a time (``load_ml_libraries``): two threads importing transformers at once can find it half
  made ("cannot import name 'AutoModel'"). Jobs that need none of them say ``needs_ml=False``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import QApplication, QWidget

from unlearn_studio.core.control import Cancelled, RunControl
from unlearn_studio.gui.error_dialog import show_error

log = logging.getLogger("unlearn_studio.gui.jobs")

DIALOG, LOG = "dialog", "log"  # where a job's errors go besides its own on_failed
SLOW_S = 1.0  # a job that took longer than this is logged with its time
ML_LIBRARIES = ("torch", "transformers", "peft")
_ml_lock = threading.Lock()
_ml_loaded = threading.Event()


def load_ml_libraries() -> None:
    """Import the ML libraries once, in one thread at a time (see the module docstring)."""
    if _ml_loaded.is_set():
        return
    with _ml_lock:
        for name in ML_LIBRARIES:
            importlib.import_module(name)
        _ml_loaded.set()


@dataclass(frozen=True)
class Progress:
    """How far a job has come: ``done`` of ``total`` (None: unknown), and what it is doing."""

    done: int = 0
    total: int | None = None
    text: str = ""
    eta_s: float | None = None


class _Signals(QObject):
    # Emitted from worker threads; received by Jobs on the GUI thread, so Qt queues each call.
    finished = Signal(int, object)  # job id, result
    failed = Signal(int, object, str)  # job id, exception, traceback text
    item = Signal(int, object)  # job id, one streamed item
    progressed = Signal(int)  # job id: a newer Progress is waiting in its context


class JobContext:
    """What a job's function gets: report items and progress, and ask whether to stop."""

    def __init__(self, job_id: int, signals: _Signals, control: RunControl):
        self.job_id = job_id
        self.control = control
        self._signals = signals
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._progress_queued = False

    def report(self, item: Any) -> None:
        """Hand ``item`` to the job's ``on_item`` on the GUI thread (queued, in order)."""
        self._signals.item.emit(self.job_id, item)

    def progress(self, done: int, total: int | None = None, text: str = "", eta_s: float | None = None) -> None:
        """Say how far the job has come. Only the newest report is shown: a fast loop that reports
        every item queues at most one signal at a time."""
        with self._lock:
            self._progress = Progress(done, total, text, eta_s)
            if self._progress_queued:
                return
            self._progress_queued = True
        self._signals.progressed.emit(self.job_id)

    def should_stop(self) -> bool:
        return self.control.should_stop()

    def take_progress(self) -> Progress | None:
        with self._lock:
            self._progress_queued = False
            return self._progress


class Job(QObject):
    """The handle of one background job (created by ``Jobs.start``)."""

    progressed = Signal(object)  # Progress, on the GUI thread
    ended = Signal(object)  # this Job: its result, failure or cancellation has been handled

    def __init__(self, job_id: int, name: str, context: JobContext, cancellable: bool, parent: QObject):
        super().__init__(parent)
        self.id = job_id
        self.name = name
        self.context = context
        self.cancellable = cancellable
        self.progress: Progress | None = None
        self.running = True
        self.discarded = False
        self.outcome = ""  # "finished", "failed" or "cancelled" once it has ended
        self.started_at = time.monotonic()

    @property
    def control(self) -> RunControl:
        return self.context.control

    @property
    def cancelled(self) -> bool:
        return self.control.should_stop()

    def cancel(self) -> None:
        """Ask the work to end early (it checks ``should_stop``); what it returns still arrives."""
        self.control.cancel()

    def discard(self) -> None:
        """Cancel, and drop whatever the job still reports: a newer request replaced it."""
        self.discarded = True
        self.cancel()


class _PoolRunnable(QRunnable):
    def __init__(self, body: Callable[[], None]):
        super().__init__()
        self.body = body

    def run(self) -> None:
        self.body()


class _JobThread(QThread):
    def __init__(self, body: Callable[[], None], parent: QObject):
        super().__init__(parent)
        self.body = body

    def run(self) -> None:
        self.body()


@dataclass
class _Callbacks:
    on_finished: Callable[[Any], None] | None
    on_failed: Callable[[Exception, str], None] | None
    on_item: Callable[[Any], None] | None
    on_cancelled: Callable[[], None] | None
    errors: str


class Jobs(QObject):
    """Starts jobs; every callback runs on the GUI thread."""

    job_started = Signal(object)  # Job
    job_ended = Signal(object)  # Job

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self._signals = _Signals(self)
        self._signals.finished.connect(self._deliver_result)
        self._signals.failed.connect(self._deliver_error)
        self._signals.item.connect(self._deliver_item)
        self._signals.progressed.connect(self._deliver_progress)
        self._jobs: dict[int, Job] = {}
        self._callbacks: dict[int, _Callbacks] = {}
        self._threads: list[_JobThread] = []
        self._bodies_running = 0
        self._idle = threading.Condition()
        self._next_id = 0
        self._shut_down = False

    # ---- starting --------------------------------------------------------------------------------

    def start(self, work: Callable[[JobContext], Any], on_finished: Callable[[Any], None] | None = None,
              on_failed: Callable[[Exception, str], None] | None = None, *,
              on_item: Callable[[Any], None] | None = None, on_cancelled: Callable[[], None] | None = None,
              name: str = "", dedicated: bool = False, control: RunControl | None = None,
              cancellable: bool = False, errors: str = DIALOG, needs_ml: bool = True) -> Job:
        """Run ``work(ctx)`` in the background and return its handle.

        ``on_finished(result)``, ``on_item(item)`` and ``on_failed(error, traceback)`` are called
        on the GUI thread; a ``Cancelled`` raised by the work calls ``on_cancelled()`` instead of
        ``on_failed``. ``dedicated`` gives the job a thread of its own (a run); ``control`` is the
        RunControl its ``cancel`` uses (a run's, so that pause and stop reach the same engine);
        ``cancellable`` says the work checks ``should_stop`` (the activity panel offers Cancel).
        ``errors``: "dialog" (the default) shows a failure in the error dialog and the log;
        "log" only logs it, for widgets that show their problems in place. ``needs_ml``: the
        ML libraries are imported first (False for work that needs none of them)."""
        if errors not in (DIALOG, LOG):
            raise ValueError(f"errors must be {DIALOG!r} or {LOG!r}")
        self._next_id += 1
        job_id = self._next_id
        context = JobContext(job_id, self._signals, control or RunControl())
        job = Job(job_id, name or getattr(work, "__name__", "job"), context, cancellable or dedicated, self)
        self._jobs[job_id] = job
        self._callbacks[job_id] = _Callbacks(on_finished, on_failed, on_item, on_cancelled, errors)
        signals = self._signals

        def body() -> None:
            try:
                if needs_ml:
                    load_ml_libraries()
                result = work(context)
            except Exception as error:  # every failure is reported to the GUI, none is swallowed
                signals.failed.emit(job_id, error, traceback.format_exc())
            else:
                signals.finished.emit(job_id, result)
            finally:
                with self._idle:
                    self._bodies_running -= 1
                    self._idle.notify_all()

        with self._idle:
            self._bodies_running += 1
        if dedicated:
            # The thread object stays a child of this Jobs (one per run): deleting it the moment it
            # reports its end could catch it before its last instruction.
            thread = _JobThread(body, self)
            thread.setObjectName(f"job-{job_id}")
            self._threads.append(thread)
            thread.start()
        else:
            self.pool.start(_PoolRunnable(body))
        log.debug("started %s", job.name)
        self.job_started.emit(job)
        return job

    # ---- state -----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether any job started here has not reported its end yet."""
        return bool(self._callbacks)

    def running(self) -> list[Job]:
        """The jobs still running, oldest first."""
        return [job for job in self._jobs.values() if job.running]

    def wait(self, msecs: int = -1) -> bool:
        """Wait until no job's function is running (their reports may still be queued) and every
        dedicated thread has ended."""
        with self._idle:
            done = self._idle.wait_for(lambda: self._bodies_running == 0, None if msecs < 0 else msecs / 1000)
        return done and all(thread.wait() if msecs < 0 else thread.wait(msecs) for thread in self._threads)

    def cancel_all(self) -> None:
        for job in self.running():
            job.cancel()

    def shut_down(self) -> None:
        """Ask every job to stop, wait for them, then drop what they still report: the widgets
        and the store their callbacks would touch are being closed."""
        self.cancel_all()
        self.wait()
        self._shut_down = True
        self._callbacks.clear()

    # ---- delivery (GUI thread) -------------------------------------------------------------------

    def _live(self, job_id: int) -> tuple[Job, _Callbacks] | None:
        """The job and its callbacks, unless its reports are to be dropped."""
        if self._shut_down or job_id not in self._callbacks:
            return None
        job = self._jobs[job_id]
        return None if job.discarded else (job, self._callbacks[job_id])

    @Slot(int, object)
    def _deliver_item(self, job_id: int, item: Any) -> None:
        live = self._live(job_id)
        if live is not None and live[1].on_item is not None:
            live[1].on_item(item)

    @Slot(int)
    def _deliver_progress(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        progress = job.context.take_progress()
        if progress is not None and self._live(job_id) is not None:
            job.progress = progress
            job.progressed.emit(progress)

    @Slot(int, object)
    def _deliver_result(self, job_id: int, result: Any) -> None:
        if job_id not in self._jobs:
            return
        live = self._live(job_id)
        callbacks = self._end(job_id, "finished")
        if live is not None and callbacks.on_finished is not None:
            callbacks.on_finished(result)
        self._ended(job_id)

    @Slot(int, object, str)
    def _deliver_error(self, job_id: int, error: Exception, trace: str) -> None:
        if job_id not in self._jobs:
            return
        live = self._live(job_id)
        cancelled = isinstance(error, Cancelled)
        callbacks = self._end(job_id, "cancelled" if cancelled else "failed")
        job = self._jobs[job_id]
        if cancelled:
            log.info("%s: cancelled", job.name)
            if live is not None and callbacks.on_cancelled is not None:
                callbacks.on_cancelled()
        elif live is None:
            log.info("%s failed after it was replaced or closed: %s", job.name, error)
        else:
            if callbacks.on_failed is not None:
                callbacks.on_failed(error, trace)
            if callbacks.errors == DIALOG:
                show_error(_dialog_parent(self), error, trace, context=job.name)
            else:
                log.warning("%s: %s", job.name, getattr(error, "problem", None) or error)
        self._ended(job_id)

    def _end(self, job_id: int, outcome: str) -> _Callbacks:
        job = self._jobs[job_id]
        job.running = False
        job.outcome = outcome
        seconds = time.monotonic() - job.started_at
        if outcome == "finished" and seconds > SLOW_S and not job.discarded:
            log.info("%s: done in %.1f s", job.name, seconds)
        return self._callbacks.pop(job_id, None) or _Callbacks(None, None, None, None, LOG)

    def _ended(self, job_id: int) -> None:
        job = self._jobs.pop(job_id)
        if not self._shut_down:
            job.ended.emit(job)
            self.job_ended.emit(job)


def _dialog_parent(jobs: Jobs) -> QWidget | None:
    owner = jobs.parent()
    if isinstance(owner, QWidget):
        return owner.window()
    return QApplication.activeWindow()


class JobSlot(QObject):
    """One job at a time for one purpose, the newest request winning.

    ``start`` discards the job before (its answer is dropped, its work asked to stop); with
    ``debounce_ms`` a burst of requests (typing) starts only the last, after a pause."""

    def __init__(self, jobs: Jobs, *, debounce_ms: int = 0, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.job: Job | None = None
        self._request: tuple | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._start_request)
        self.debounce_ms = debounce_ms

    @property
    def pending(self) -> bool:
        """A request waits for its pause or its answer."""
        return self._request is not None or (self.job is not None and self.job.running)

    def start(self, work: Callable[[JobContext], Any], on_finished: Callable[[Any], None] | None = None,
              on_failed: Callable[[Exception, str], None] | None = None, *, now: bool = False, **options) -> None:
        """Replace the current request with this one (see ``Jobs.start`` for the arguments)."""
        self.cancel()
        self._request = (work, on_finished, on_failed, options)
        if now or not self.debounce_ms:
            self._start_request()
        else:
            self._timer.start()

    def cancel(self) -> None:
        """Forget the waiting request and discard the running job."""
        self._timer.stop()
        self._request = None
        if self.job is not None and self.job.running:
            self.job.discard()
        self.job = None

    def _start_request(self) -> None:
        if self._request is None:
            return
        work, on_finished, on_failed, options = self._request
        self._request = None
        self.job = self.jobs.start(work, on_finished, on_failed, **options)
