"""Garbage is collected on the GUI thread only (gui/collector.py): a collection in a worker thread
can destroy a closed window's Qt objects there and deadlock with the GUI thread."""

from __future__ import annotations

import gc
import threading

from unlearn_studio.gui import collector


class Cycle:
    def __init__(self):
        self.me = self


def test_worker_garbage_is_collected_on_the_gui_thread(qapp, qtbot):
    collector.install(qapp)
    threads: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase == "stop" and info["collected"]:
            threads.append(threading.get_ident())

    gc.callbacks.append(note)
    try:
        worker = threading.Thread(target=lambda: [Cycle() for _ in range(20 * gc.get_threshold()[0])])
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: bool(threads), timeout=10_000)
    finally:
        gc.callbacks.remove(note)
    assert not gc.isenabled()
    assert set(threads) == {threading.main_thread().ident}
