"""Cooperative control of a running run: pause, resume, stop and save, cancel.

Any thread (the GUI, a signal handler, a test) calls the methods; the runner checks the state
once per step, between steps. Waiting while paused blocks on a condition variable, so a paused
run uses no CPU and wakes at once on resume, stop or cancel.
"""

from __future__ import annotations

import threading

STOP = "stop"  # end now with a usable adapter ("stopped")
CANCEL = "cancel"  # end now without an adapter ("cancelled"); checkpoints are kept


class Cancelled(Exception):
    """Raised inside long work (evaluation, generation, loading) once the user asked it to end;
    the work stops between batches and whoever started it decides what the run's status is."""


class RunControl:
    """Thread-safe requests to a run. A cancel overrides an earlier stop, never the reverse."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._paused = False
        self._request: str | None = None

    # ---- requests (any thread) -----------------------------------------------------------------

    def pause(self) -> None:
        """Hold the run between steps until ``resume`` (or a stop or cancel)."""
        with self._changed:
            self._paused = True
            self._changed.notify_all()

    def resume(self) -> None:
        with self._changed:
            self._paused = False
            self._changed.notify_all()

    def stop_and_save(self) -> None:
        """End after the current step, saving the adapter and a checkpoint."""
        with self._changed:
            if self._request is None:
                self._request = STOP
            self._changed.notify_all()

    def cancel(self) -> None:
        """End after the current step without an adapter."""
        with self._changed:
            self._request = CANCEL
            self._changed.notify_all()

    # ---- state (the runner) --------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        with self._changed:
            return self._paused

    @property
    def request(self) -> str | None:
        """``STOP``, ``CANCEL`` or None."""
        with self._changed:
            return self._request

    def should_stop(self) -> bool:
        """True once a stop or cancel was asked for: long work inside a step ends early."""
        return self.request is not None

    def wait_while_paused(self, timeout: float | None = None) -> str | None:
        """Block while paused with nothing requested; return the request (None: resumed).

        ``timeout`` bounds the wait (for callers that must stay responsive); None waits until
        something changes.
        """
        with self._changed:
            self._changed.wait_for(lambda: not self._paused or self._request is not None, timeout)
            return self._request
