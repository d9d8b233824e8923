"""Sample the stacks of every Python thread, to explain where a long GUI pause went.

A background thread records, every ``interval`` seconds, the innermost frames of each thread. A
sample that arrives late means some thread held the GIL (or the process was descheduled) the
whole time; the samples inside a pause show what the GUI thread was running, or what the thread
that held the GIL was doing.
"""

from __future__ import annotations

import collections
import sys
import threading
import time


def _summary(frame, depth: int) -> str:
    names = []
    while frame is not None and len(names) < depth:
        code = frame.f_code
        names.append(f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(names)


class StackSampler:
    def __init__(self, interval: float = 0.002, depth: int = 6):
        self.interval, self.depth = interval, depth
        self.samples: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> "StackSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        own = threading.get_ident()
        names = {}
        while not self._stop.wait(self.interval):
            names.update((t.ident, t.name) for t in threading.enumerate())
            frames = sys._current_frames()
            self.samples.append((time.perf_counter(), {names.get(ident, str(ident)): _summary(frame, self.depth)
                                                       for ident, frame in frames.items() if ident != own}))

    def explain(self, start: float, end: float, top: int = 3) -> list[str]:
        """What each thread was running between two perf_counter times, most frequent first; the
        first line says how late the samples came (a late sample: the GIL was held by another thread)."""
        inside = [(t, stacks) for t, stacks in self.samples if start <= t <= end]
        times = [start] + [t for t, _ in inside] + [end]
        longest = max(b - a for a, b in zip(times, times[1:]))
        lines = [f"{len(inside)} samples, longest stretch without one {longest * 1000:.0f} ms"]
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for _, stacks in inside:
            for thread, stack in stacks.items():
                counts[thread][stack] += 1
        for thread, counter in counts.items():
            for stack, n in counter.most_common(top):
                lines.append(f"  [{thread}] x{n}: {stack}")
        return lines
