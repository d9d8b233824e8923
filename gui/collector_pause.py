"""Keep Python's full garbage collections out of a training run.

Once torch, transformers and a model are loaded the process holds about half a million objects,
and a full (generation 2) collection walks them all while holding the GIL: about 300 ms in which
the window cannot repaint or react. ``gc.freeze`` moves the objects that exist when a run starts
training out of the collector's reach, so later collections only walk what is new; when the last
run ends ``gc.unfreeze`` gives them back, so that reference cycles among them (a discarded model's)
are still collected afterwards.
"""

from __future__ import annotations

import gc

_holders = 0


def hold() -> None:
    """A run started training: freeze what exists (again, for each run, to include its model)."""
    global _holders
    _holders += 1
    gc.freeze()


def release() -> None:
    """A run ended: once none is training, the frozen objects go back to the collector."""
    global _holders
    _holders = max(0, _holders - 1)
    if _holders == 0:
        gc.unfreeze()
