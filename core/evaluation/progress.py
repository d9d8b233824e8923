"""Progress and cancel inside an evaluation.

The evaluation plans its work up front in units, one per row passed through the model (a scored
sequence or a greedy answer: on the demo model 60 greedy answers take about as long as scoring 60
answers, 0.35 s each), then reports after every batch: the set being measured, how many of its
items are done, and the time left for the whole evaluation, estimated from the units done so far. Between batches it asks ``should_stop()`` and raises
``core.control.Cancelled`` once the user has cancelled, so a long evaluation ends promptly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from unlearn_studio.core.control import Cancelled
from unlearn_studio.core.events import EvaluationProgressEvent

Report = Callable[[EvaluationProgressEvent], None]


class ProgressTracker:
    """Counts units of work, sends ``EvaluationProgressEvent``s and checks for a cancel."""

    def __init__(self, report: Report | None = None, should_stop: Callable[[], bool] | None = None, *,
                 phase: str = "", clock: Callable[[], float] = time.monotonic):
        self.report = report
        self.should_stop = should_stop
        self.phase = phase
        self.clock = clock
        self.total_units = 0
        self.done_units = 0
        self.started = clock()
        self.set_name = ""
        self.set_items = 0
        self.set_units = 0
        self.set_done = 0

    def plan(self, units: int) -> None:
        """Add ``units`` to the work still to come."""
        self.total_units += max(0, units)

    def start_set(self, name: str, items: int, units: int) -> None:
        """The set now measured: its item count and the units it will take."""
        self.check()
        self.set_name, self.set_items, self.set_units, self.set_done = name, items, max(units, 1), 0
        self._send()

    def advance(self, units: int) -> None:
        """``units`` of the current set are done (after a batch); raises Cancelled if asked to."""
        self.set_done += units
        self.done_units += units
        self._send()
        self.check()

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(f"evaluation cancelled while measuring {self.set_name or 'the first set'}")

    def eta_s(self) -> float | None:
        if self.done_units <= 0 or self.total_units <= self.done_units:
            return None if self.done_units <= 0 else 0.0
        elapsed = self.clock() - self.started
        return elapsed / self.done_units * (self.total_units - self.done_units)

    def _send(self) -> None:
        if self.report is None:
            return
        done = min(self.set_items, round(self.set_items * self.set_done / self.set_units))
        self.report(EvaluationProgressEvent("", self.phase, self.set_name, done, self.set_items, self.eta_s()))
