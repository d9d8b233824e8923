"""The thread crossing: results, errors and streamed items arrive on the GUI thread, in order."""

import threading

from unlearn_studio.gui.worker import JobRunner


def test_streamed_items_arrive_on_the_gui_thread_in_order_before_the_result(qtbot):
    jobs = JobRunner()
    gui_thread = threading.current_thread()
    items, threads, results = [], [], []

    def work(report):
        for number in range(50):
            report(number)
        return "done"

    def on_item(item):
        items.append(item)
        threads.append(threading.current_thread())

    jobs.start_streaming(work, on_item, results.append, lambda error, trace: results.append(error))
    qtbot.waitUntil(lambda: bool(results))
    assert results == ["done"]
    assert items == list(range(50))
    assert all(t is gui_thread for t in threads)
    assert not jobs.busy


def test_a_failing_job_reports_its_exception_and_traceback(qtbot):
    jobs = JobRunner()
    failures = []

    def work():
        raise ValueError("bad input")

    jobs.start(work, lambda result: failures.append(("finished", result)),
               lambda error, trace: failures.append((error, trace)))
    qtbot.waitUntil(lambda: bool(failures))
    error, trace = failures[0]
    assert isinstance(error, ValueError) and "bad input" in trace
    assert not jobs.busy


def test_after_shut_down_late_reports_are_dropped(qtbot):
    jobs = JobRunner()
    delivered = []
    job_id = jobs.start(lambda: "late", delivered.append, lambda error, trace: delivered.append(error))
    jobs.shut_down()  # the job has ended; its result is still queued for the GUI thread
    jobs._deliver_result(job_id, "late")  # what the queued signal does when the event loop runs
    assert delivered == [] and not jobs.busy
