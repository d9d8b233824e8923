"""Opening the project store safely: every check on the path runs before anything touches the disk
(a refused open leaves no file), one writer at a time (an exclusive advisory lock file beside the
database), a file that is not an Unlearn Studio store (or is a newer one's) is refused, and SQLite's
errors become messages that say what to do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import platformdirs
from sqlite_utils import Database

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.store_schema import MIGRATION_SET, migrations

_SQLITE_MAGIC = b"SQLite format 3\x00"
STORE_FIX = "Pass --store PATH with a file in a folder you can write to."
Opened = TypeVar("Opened")


def default_store_path() -> Path:
    """Where the store lives unless ``--store`` says otherwise."""
    return Path(platformdirs.user_data_dir("unlearn-studio")) / "projects.db"


def store_path(path: str | os.PathLike | None, *, create_folder: bool) -> Path:
    """``path`` as an absolute path; None is the default store, whose folder a writer creates."""
    if path is None:
        path = default_store_path()
        if create_folder:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"The folder for the project store {path.parent} cannot be created: {e.strerror}",
                                STORE_FIX) from None
    return Path(path).expanduser().absolute()




def _check_sqlite_header(path: Path) -> None:
    """Refuse a file that is not SQLite (an empty file is an empty database, which is fine)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise UserError(f"The project store {path} cannot be read: {e.strerror}", STORE_FIX) from None
    if head and head != _SQLITE_MAGIC:
        raise UserError(
            f"{path} is not an Unlearn Studio project store (it is not a SQLite database)",
            "Pass --store with the path of a project store, or of a new file to create one.",
        )


def _check_writable(path: Path) -> None:
    folder = path.parent
    if not folder.exists():
        raise UserError(
            f"The folder of the project store {path} does not exist",
            f"Create {folder} first, or pass --store PATH in an existing folder.",
        )
    if not folder.is_dir():
        raise UserError(
            f"The project store {path} cannot be created: {folder} is a file, not a folder",
            STORE_FIX,
        )
    # WAL mode writes -wal and -shm files beside the database, so the folder itself must be
    # writable even when the database file already exists.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"The project store {path} is in a read-only folder ({folder})", STORE_FIX)
    if path.exists():
        if not path.is_file():
            raise UserError(f"The project store {path} is not a file", STORE_FIX)
        if not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"The project store {path} is read-only", STORE_FIX)
        _check_sqlite_header(path)


def _sqlite_user_error(path: Path, error: sqlite3.Error) -> UserError:
    """Say in words what a SQLite error at open time means."""
    message = str(error).lower()
    if "locked" in message or "busy" in message:
        return UserError(
            f"The project store {path} is locked by another program",
            "Close the program that holds it (another Unlearn Studio, a database browser) and "
            "try again, or pass --store PATH.",
        )
    if "not a database" in message or "malformed" in message or "encrypted" in message:
        return UserError(
            f"{path} is not an Unlearn Studio project store (it is not a usable SQLite database)",
            "Pass --store with the path of a project store, or of a new file to create one.",
        )
    if "readonly" in message or "read-only" in message:
        return UserError(f"The project store {path} is read-only", STORE_FIX)
    return UserError(f"The project store {path} cannot be opened: {error}", STORE_FIX)


def check_ours(db: Database, path: Path) -> None:
    """Refuse SQLite files that belong to something else, or to a newer Unlearn Studio."""
    tables = set(db.table_names())
    if not tables:
        return
    if migrations.migrations_table not in tables:
        raise UserError(
            f"{path} is a SQLite database but not an Unlearn Studio project store",
            "Pass --store with the path of a project store, or of a new file to create one.",
        )
    applied = {m.name for m in migrations.applied(db)}
    # sqlite-migrate has no public list of registered names; _migrations is that list.
    known = {m.name for m in migrations._migrations}
    if not applied and tables - {migrations.migrations_table}:
        raise UserError(
            f"{path} is a SQLite database but not an Unlearn Studio project store "
            f"(no '{MIGRATION_SET}' schema)",
            "Pass --store with the path of a project store, or of a new file to create one.",
        )
    if applied - known:
        raise UserError(
            f"The project store {path} was written by a newer Unlearn Studio",
            "Update Unlearn Studio, or pass --store PATH to use another store.",
        )


def open_reader(path: Path, busy_timeout_ms: int) -> Database:
    """The store at ``path`` opened read-only (no lock; WAL lets it read while a writer writes)."""
    if not path.is_file():
        raise UserError(
            f"The project store {path} does not exist",
            "Check the --store path; a store is created the first time the app or a run writes to it.",
        )
    _check_sqlite_header(path)
    uri = f"{path.as_uri()}?mode=ro"
    conn = None
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=busy_timeout_ms / 1000)
        db = Database(conn, execute_plugins=False)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        check_ours(db, path)
        if migrations.pending(db):
            raise UserError(
                f"The project store {path} was written by an older Unlearn Studio",
                "Open it once for writing (start the app or a run with this --store) to upgrade it.",
            )
    except BaseException as e:
        if conn is not None:
            conn.close()
        if isinstance(e, sqlite3.Error):
            raise _sqlite_user_error(path, e) from None
        raise
    return db


def open_writer(path: Path, busy_timeout_ms: int, finish: Callable[[Database, int], Opened]) -> Opened:
    """The store at ``path`` locked for this process, created or upgraded, handed with its lock's
    file descriptor to ``finish`` (which builds the handle). If anything fails, ``finish``
    included, the lock is released and a store or lock file this call created is removed."""
    _check_writable(path)
    existed = path.exists()
    lock_path = path.with_name(path.name + ".lock")
    lock_existed = lock_path.exists()
    try:
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"The project store {path} cannot be locked: {e.strerror}", STORE_FIX) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(lock_fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UserError(
                f"The project store {path} is in use by another Unlearn Studio process",
                "Close the other window or pass --store PATH",
            ) from None
        raise UserError(f"The project store {path} cannot be locked: {e.strerror}", STORE_FIX) from None

    conn = None
    try:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_timeout_ms / 1000)
        db = Database(conn, execute_plugins=False)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        db.execute("PRAGMA foreign_keys = ON")
        check_ours(db, path)
        # Take the write lock once up front: a store locked by another program is refused
        # here, before any migration or status change could half-happen.
        db.execute("BEGIN IMMEDIATE")
        db.execute("COMMIT")
        db.enable_wal()
        migrations.apply(db)
        return finish(db, lock_fd)
    except BaseException as e:
        if conn is not None:
            conn.close()
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        if not lock_existed:
            lock_path.unlink(missing_ok=True)
        if not existed:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
        if isinstance(e, sqlite3.Error):
            raise _sqlite_user_error(path, e) from None
        raise
