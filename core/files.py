"""Folders the app writes: each one built beside its final place and renamed into it, so that a
crash never leaves half a folder behind."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def write_dir_atomically(final: Path, fill) -> Path:
    """Create ``final`` by calling ``fill(tmp_folder)`` and renaming; a crash leaves no half folder."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        fill(tmp)
        if final.exists():
            # Only when a step is written again (a resumed run stopping at its checkpoint step).
            old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
