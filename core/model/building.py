"""One model built at a time in this process.

transformers and peft build a model by patching process-wide state for the duration:
``from_pretrained`` replaces ``PreTrainedModel.tie_weights`` and the ``torch.nn.init`` functions
with no-ops and sets torch's default dtype, then puts the originals back. Two threads building at
once (a run starting while the Compare page loads its base model, an evaluation beside an export)
see each other's patches: a model whose tied ``lm_head`` is never tied (it stays on the meta
device: "Cannot copy out of meta tensor"), LoRA matrices left uninitialised, and, when the two
exits interleave, ``tie_weights`` left a no-op for the rest of the process. Every place that builds
or loads a model or adapter enters ``building_models()`` first; the threads take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class BuildingSection:
    """A re-entrant lock that knows how many threads wait for it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition()
        self._waiting = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            self._count(+1)
            try:
                self._lock.acquire()
            finally:
                self._count(-1)
        try:
            yield
        finally:
            self._lock.release()

    @property
    def waiting(self) -> int:
        """Threads waiting for another thread's model to be built."""
        return self._waiting

    def wait_for_waiting(self, count: int, timeout: float) -> bool:
        """Block until ``count`` threads wait (False after ``timeout`` seconds)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._waiting >= count, timeout)

    def _count(self, step: int) -> None:
        with self._changed:
            self._waiting += step
            self._changed.notify_all()


building_models = BuildingSection()
