"""The one job abstraction: results, items and progress arrive on the GUI thread in order; a
failure reaches the job's callback, the error dialog and the log; cancel and "newest result
wins"; a run's job gets a thread of its own."""

import logging
import threading

from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QMessageBox, QWidget

from unlearn_studio.core.control import Cancelled
from unlearn_studio.core.errors import UserError
from unlearn_studio.gui.jobs import LOG, Jobs, JobSlot


def error_boxes() -> list[QMessageBox]:
    from PySide6.QtWidgets import QApplication

    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.objectName() == "errorDialog"
            and w.isVisible()]


def close_error_boxes() -> None:
    for box in error_boxes():
        box.close()


def test_streamed_items_arrive_on_the_gui_thread_in_order_before_the_result(qtbot):
    jobs = Jobs()
    gui_thread = threading.current_thread()
    items, threads, results = [], [], []

    def work(ctx):
        for number in range(50):
            ctx.report(number)
        return "done"

    def on_item(item):
        items.append(item)
        threads.append(threading.current_thread())

    job = jobs.start(work, results.append, on_item=on_item, name="count to fifty", needs_ml=False)
    with qtbot.waitSignal(job.ended):
        pass
    assert results == ["done"] and items == list(range(50))
    assert all(t is gui_thread for t in threads)
    assert not jobs.busy and job.outcome == "finished"


def run_failing(qtbot, caplog, error: Exception, **options) -> QWidget:
    """Run a job that raises ``error`` to its end, under a window that owns the Jobs; returns the window."""
    owner = QWidget()
    qtbot.addWidget(owner)

    def work(ctx):
        raise error

    with caplog.at_level(logging.INFO, logger="unlearn_studio"):
        job = Jobs(owner).start(work, needs_ml=False, **options)
        with qtbot.waitSignal(job.ended):
            pass
    return owner


def test_a_failure_reaches_its_callback_the_error_dialog_and_the_log(qtbot, caplog):
    failures = []
    owner = run_failing(qtbot, caplog, ValueError("bad input"), on_finished=lambda result: failures.append(result),
                        on_failed=lambda error, trace: failures.append((error, trace)), name="Reading the thing")
    error, trace = failures[0]
    assert isinstance(error, ValueError) and "bad input" in trace
    boxes = [box for box in owner.findChildren(QMessageBox) if box.objectName() == "errorDialog"]
    assert boxes and "bad input" in boxes[-1].text()
    assert any("Reading the thing" in r.getMessage() and "bad input" in r.getMessage() for r in caplog.records)


def test_a_job_that_shows_its_problems_in_place_only_logs_them(qtbot, caplog):
    seen = []
    owner = run_failing(qtbot, caplog, UserError("The file is missing", "Choose another file."),
                        on_failed=lambda error, trace: seen.append(error.problem), errors=LOG, name="Preview")
    assert seen == ["The file is missing"]
    assert not owner.findChildren(QMessageBox)
    assert any("The file is missing" in r.getMessage() for r in caplog.records)


def test_cancel_asks_the_work_to_stop_and_a_cancelled_job_is_not_an_error(qtbot):
    jobs = Jobs()
    started, outcome = threading.Event(), []

    def work(ctx):
        ctx.control.pause()
        started.set()
        ctx.control.wait_while_paused()  # blocks until the cancel
        if ctx.should_stop():
            raise Cancelled()
        return "not cancelled"

    job = jobs.start(work, on_finished=lambda _: outcome.append("finished"),
                     on_failed=lambda *_: outcome.append("failed"), on_cancelled=lambda: outcome.append("cancelled"),
                     cancellable=True, needs_ml=False)
    assert started.wait(10)
    with qtbot.waitSignal(job.ended):
        job.cancel()
    assert outcome == ["cancelled"] and job.outcome == "cancelled"
    assert not error_boxes()


def test_the_newest_request_wins(qtbot):
    jobs = Jobs()
    slot = JobSlot(jobs)
    release_first, shown = threading.Event(), []

    def first(ctx):
        release_first.wait(10)
        return "old"

    slot.start(first, shown.append, needs_ml=False)
    old = slot.job
    slot.start(lambda ctx: "new", shown.append, needs_ml=False)  # replaces the first: its answer must never be shown
    assert old.discarded and old.cancelled
    with qtbot.waitSignal(slot.job.ended):
        pass
    with qtbot.waitSignal(old.ended):
        release_first.set()
    assert shown == ["new"] and not slot.pending


def test_a_burst_of_requests_starts_only_the_last_after_a_pause(qtbot):
    jobs = Jobs()
    slot = JobSlot(jobs, debounce_ms=50)
    started, shown = [], []
    for text in ("a", "ab", "abc"):
        slot.start(lambda ctx, text=text: started.append(text) or text, shown.append, needs_ml=False)
    assert slot.pending and slot.job is None
    qtbot.waitUntil(lambda: shown == ["abc"])
    assert started == ["abc"]


def test_progress_reaches_the_gui_thread_and_only_the_newest_is_kept(qtbot):
    jobs = Jobs()
    seen = []

    def work(ctx):
        for done in range(1, 1001):
            ctx.progress(done, 1000, "items")
        return done

    job = jobs.start(work, name="Counting", needs_ml=False)
    job.progressed.connect(lambda progress: seen.append(progress.done))
    with qtbot.waitSignal(job.ended):
        pass
    assert seen and seen[-1] == 1000 and seen == sorted(seen)
    assert len(seen) < 1000  # reports that came faster than the GUI thread read them were folded


def test_a_dedicated_job_runs_on_its_own_thread_not_the_pool(qtbot):
    """The pool's one thread is busy: a dedicated job runs anyway."""
    jobs = Jobs(pool=QThreadPool())
    jobs.pool.setMaxThreadCount(1)
    blocker = threading.Event()
    jobs.start(lambda ctx: blocker.wait(10), needs_ml=False)  # holds the pool's only thread
    names = []
    job = jobs.start(lambda ctx: names.append(threading.current_thread().name), dedicated=True, needs_ml=False)
    with qtbot.waitSignal(job.ended):
        pass
    blocker.set()
    jobs.wait()
    assert names and job.outcome == "finished"


def test_after_shut_down_late_reports_are_dropped(qtbot):
    jobs = Jobs()
    delivered = []
    job = jobs.start(lambda ctx: "late", delivered.append, lambda error, trace: delivered.append(error),
                     needs_ml=False)
    jobs.shut_down()  # the job has ended; its result is still queued for the GUI thread
    jobs._deliver_result(job.id, "late")  # what the queued signal does when the event loop runs
    assert delivered == [] and not jobs.busy


def test_a_job_finds_the_ml_libraries_imported_before_it_runs(qtbot):
    """Two jobs that use transformers never import it at once (it can be found half made)."""
    import sys

    jobs = Jobs()
    seen = []
    for _ in range(2):
        jobs.start(lambda ctx: seen.append(all(m in sys.modules for m in ("torch", "transformers", "peft"))))
    qtbot.waitUntil(lambda: not jobs.busy, timeout=300_000)  # both ended (in either order)
    assert seen == [True, True]
