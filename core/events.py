"""What the engine reports while it runs: plain dataclass events, tagged with the run id.

Listeners are plain callables ``listener(event)``. The engine calls them from its own thread; the
GUI crosses into the Qt thread in one place (gui/worker.py). ``EventBatcher`` hands step events to
a listener in batches at a bounded rate, so a fast run cannot flood a slow listener.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    run_id: str


@dataclass(frozen=True)
class StepEvent(Event):
    """One optimizer step. ``losses`` holds every named term ("loss/forget", …) and "loss/total"."""

    step: int
    total_steps: int
    epoch: float
    losses: dict[str, float]
    lr: float
    grad_norm: float
    tokens_per_s: float
    peak_memory_mb: float
    eta_s: float | None
    extra: dict[str, float] = field(default_factory=dict)  # method-specific scalars (e.g. ICU's active targets)


@dataclass(frozen=True)
class StatusEvent(Event):
    """A change of state: queued, running, resumed, paused, stopping, evaluating, … with a short
    message. ``step``: the last completed step it refers to (a resumed run: its checkpoint's step,
    whose history the store holds; paused: after this step), 0 before the first."""

    status: str
    message: str = ""
    step: int = 0


@dataclass(frozen=True)
class LogEvent(Event):
    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True)
class EvaluationEvent(Event):
    phase: str  # "before" | "after"
    suite: str
    aggregates: dict[str, float]


@dataclass(frozen=True)
class EvaluationProgressEvent(Event):
    """How far an evaluation has come: ``done`` of ``total`` items of the set being measured.

    The evaluation reports it with an empty run id; the runner fills in the run's."""

    phase: str  # "before" | "after" | "" outside a run
    set_name: str
    done: int
    total: int
    eta_s: float | None = None


@dataclass(frozen=True)
class FinishedEvent(Event):
    """The run ended with a usable adapter: "finished", or "stopped" (stop and save)."""

    status: str
    adapter_dir: str
    steps: int


@dataclass(frozen=True)
class FailedEvent(Event):
    """The run ended without a result: "failed" (with what to do) or "cancelled"."""

    status: str
    message: str
    fix: str = ""
    traceback: str = ""


Listener = Callable[[Event], None]


class EventBatcher:
    """Forwards events to ``deliver(list_of_events)`` at most ``max_hz`` times a second.

    Step events are collected and delivered together; any other event (status, finished, …)
    flushes what is pending at once, so the order of events is kept and nothing is dropped.
    """

    def __init__(self, deliver: Callable[[list[Event]], None], max_hz: float = 20.0,
                 clock: Callable[[], float] = time.monotonic):
        self._deliver = deliver
        self._interval = 1.0 / max_hz
        self._clock = clock
        self._pending: list[Event] = []
        self._last = float("-inf")
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._pending.append(event)
            due = self._clock() - self._last >= self._interval
            if isinstance(event, StepEvent) and not due:
                return
            batch, self._pending = self._pending, []
            self._last = self._clock()
        self._deliver(batch)

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._last = self._clock()
        if batch:
            self._deliver(batch)
