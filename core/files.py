"""Folders the app writes, and the one rule about them: never delete or overwrite a folder the app
did not create.

Every folder the app creates carries a marker file (``MARKER``) that says so and what it is (an
adapter, an export, a run, a demo build, a checkpoint). An output goes to a new or empty folder; an
existing folder with files in it is refused, unless it carries the marker AND the user asked to
overwrite it. Folders are built beside their final place and renamed into it, so that a crash never
leaves half a folder behind, and a failed write leaves the old folder as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from unlearn_studio.core.errors import UserError

MARKER = ".unlearn-studio"
APP = "Unlearn Studio"
LISTED_FILES = 5  # how many of a refused folder's files the message names
HOW_TO_OVERWRITE = "ask to overwrite it (--overwrite on the command line)"


def mark_as_own(folder: Path, kind: str, **details: str) -> None:
    """Say in ``folder`` that the app created it, and as what (``kind``: "adapter", "run", …).

    The marker holds no time stamp, so that a rebuilt folder (the demo) is byte for byte the same."""
    record = {"created_by": APP, "kind": kind, **details}
    (Path(folder) / MARKER).write_text(json.dumps(record, sort_keys=True) + "\n", encoding="utf-8")


def own_kind(folder: Path) -> str | None:
    """What the app created ``folder`` as, or None when it did not create it (no readable marker)."""
    try:
        record = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("created_by") != APP:
        return None
    return str(record.get("kind", ""))


def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if p.name != MARKER)
    shown = ", ".join(names[:LISTED_FILES])
    return shown + (f" and {len(names) - LISTED_FILES} more" if len(names) > LISTED_FILES else "")


def check_output_folder(folder: str | os.PathLike, *, what: str, overwrite: bool = False,
                        how_to_overwrite: str = HOW_TO_OVERWRITE) -> Path:
    """``folder`` as a Path once it is fine to write ``what`` there; a UserError otherwise.

    Fine: it does not exist, or it is an empty folder, or it is a folder the app created and
    ``overwrite`` is set. Call it before any long work, so that a refusal costs nothing."""
    path = Path(folder).expanduser()
    if not path.exists():
        return path
    if not path.is_dir():
        raise UserError(f"The {what} folder {path} is a file, not a folder",
                        "Choose a new folder name; Unlearn Studio never replaces a file it did not write.")
    if not any(p.name != MARKER for p in path.iterdir()):
        return path
    kind = own_kind(path)
    if kind is None:
        raise UserError(f"The {what} folder {path} already holds files that Unlearn Studio did not write: "
                        f"{_listing(path)}",
                        "Choose a new folder (or an empty one); Unlearn Studio never deletes or overwrites "
                        "a folder it did not create.")
    if not overwrite:
        raise UserError(f"The {what} folder {path} already holds an earlier {kind} written by Unlearn Studio: "
                        f"{_listing(path)}",
                        f"Choose a new folder, or {how_to_overwrite} to replace it.")
    return path


@contextlib.contextmanager
def building(final: str | os.PathLike, *, kind: str, overwrite: bool = False, what: str | None = None,
             how_to_overwrite: str = HOW_TO_OVERWRITE) -> Iterator[Path]:
    """A new folder beside ``final`` to fill inside the ``with``; on a clean exit it is renamed into
    ``final`` and carries the app's marker of ``kind``.

    ``final`` may be missing or empty; an earlier folder of the app's is replaced only with
    ``overwrite``; anything else is refused (``check_output_folder``) on entry, before any work.
    If the body fails, ``final`` is left exactly as it was and the new folder is removed."""
    what = what or kind
    final = check_output_folder(final, what=what, overwrite=overwrite, how_to_overwrite=how_to_overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        mark_as_own(tmp, kind)
        yield tmp
        # Checked again: the folder may have changed while the body ran.
        check_output_folder(final, what=what, overwrite=overwrite, how_to_overwrite=how_to_overwrite)
        _move_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)  # our own staging folder


def write_dir_atomically(final: str | os.PathLike, fill: Callable[[Path], object], *, kind: str,
                         overwrite: bool = False, what: str | None = None,
                         how_to_overwrite: str = HOW_TO_OVERWRITE) -> Path:
    """``fill(folder)`` a new folder and rename it into ``final`` (see ``building``); returns ``final``."""
    with building(final, kind=kind, overwrite=overwrite, what=what, how_to_overwrite=how_to_overwrite) as tmp:
        fill(tmp)
    return Path(final).expanduser()


def _move_into_place(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
    elif own_kind(final) is None:
        # An empty folder of the user's: keep the folder itself and move our files into it.
        for entry in tmp.iterdir():
            os.replace(entry, final / entry.name)
    else:
        old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)  # the app's own earlier folder, asked to be replaced


def remove_own_folder(folder: str | os.PathLike, kind: str | None = None) -> bool:
    """Delete ``folder`` if the app created it (as ``kind``, when given); True if it was deleted.
    A folder without the app's marker is never touched."""
    path = Path(folder)
    found = own_kind(path) if path.is_dir() else None
    if found is None or (kind is not None and found != kind):
        return False
    shutil.rmtree(path)
    return True
