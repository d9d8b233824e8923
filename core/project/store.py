"""The project store: projects, runs, metrics, evaluations and artifacts in one SQLite file.

One writer: a writing ``Store`` holds an exclusive advisory lock file next to the database
(``projects.db.lock``), so a second Unlearn Studio process is refused with a clear message
instead of two processes interleaving writes (store_open.py: the checks and the lock). Inside a
process every call goes through one lock, so a worker thread may log metrics while the GUI
thread reads. Readers (``Store.open(path, readonly=True)``) take no lock; WAL mode lets them read
during writes. Bad store paths are checked before anything touches the disk: a refused open
leaves no file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from sqlite_utils import Database

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store_open import open_reader, open_writer, store_path
from unlearn_studio.core.project.store_values import (
    decode_metric,
    encode_metric,
    file_digest,
    package_version,
    timestamp,
)

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "paused", "finished", "failed", "cancelled", "interrupted", "stopped")
TERMINAL_STATUSES = frozenset({"finished", "failed", "cancelled", "interrupted", "stopped"})
PHASES = ("before", "after")

# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class Store:
    """Handle on one project store. Create it with ``Store.open``; close it with ``close``."""

    def __init__(self, path: Path, db: Database, readonly: bool, lock_fd: int | None):
        self.path = path
        self.db = db
        self.readonly = readonly
        self._lock_fd = lock_fd
        self._lock = threading.RLock()
        self._closed = False
        #: Ids of runs found 'running' or 'paused' when this writer opened the store; a crash
        #: or a kill left them so, and they are now marked 'interrupted'.
        self.interrupted: list[str] = []

    # ---- opening and closing -----------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike | None = None, *, readonly: bool = False, busy_timeout_ms: int = 5000
    ) -> Store:
        """Open (and for a writer, create or upgrade) the store at ``path``.

        ``path`` defaults to ``default_store_path()``. Raises ``UserError`` for a path that
        cannot hold a store, a file that is not one, or a store in use by another writer.
        """
        path = store_path(path, create_folder=not readonly)
        if readonly:
            return cls(path, open_reader(path, busy_timeout_ms), readonly=True, lock_fd=None)

        def started(db: Database, lock_fd: int) -> Store:
            store = cls(path, db, readonly=False, lock_fd=lock_fd)
            store._mark_interrupted()
            return store

        return open_writer(path, busy_timeout_ms, started)

    def _mark_interrupted(self) -> None:
        with self._write():
            rows = list(self.db.query("SELECT id, status FROM runs WHERE status IN ('running', 'paused')"))
            now = timestamp()
            for row in rows:
                self.db["runs"].update(
                    row["id"],
                    {
                        "status": "interrupted",
                        "ended": now,
                        "error": f"Unlearn Studio stopped while the run was {row['status']}",
                    },
                )
        self.interrupted = [row["id"] for row in rows]
        if self.interrupted:
            log.warning("Marked %d run(s) as interrupted: %s", len(rows), ", ".join(self.interrupted))

    def close(self) -> None:
        """Close the database and release the writer lock. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.db.close()
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One writer at a time, one transaction per call."""
        if self.readonly:
            raise RuntimeError(f"The project store {self.path} was opened read-only")
        with self._lock:
            self._check_open()
            with self.db.atomic():
                yield

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            yield

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"The project store {self.path} is closed")

    def _require_run(self, run_id: str) -> dict:
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise UserError(
                f"There is no run {run_id} in the project store {self.path}",
                "Pick a run from the list of runs (unlearn-studio runs).",
            )
        return rows[0]

    # ---- projects ----------------------------------------------------------------------------

    def create_project(self, name: str, path: str | os.PathLike | None) -> int:
        """Add a project; ``path`` is its TOML file (stored absolute). Returns the project id."""
        stored = str(Path(path).expanduser().absolute()) if path is not None else None
        with self._write():
            table = self.db["projects"].insert({"name": name, "path": stored, "created": timestamp()})
            return int(table.last_pk)

    def ensure_project(self, name: str, path: str | os.PathLike) -> int:
        """The id of the project stored for this TOML file, created if there is none yet."""
        stored = str(Path(path).expanduser().absolute())
        with self._read():
            rows = list(self.db.query("SELECT id FROM projects WHERE path = ? ORDER BY id LIMIT 1", [stored]))
            if rows:
                return int(rows[0]["id"])
            return self.create_project(name, stored)

    def projects(self) -> list[dict]:
        with self._read():
            return list(self.db.query("SELECT * FROM projects ORDER BY id"))

    # ---- runs --------------------------------------------------------------------------------

    def start_run(
        self,
        project_id: int,
        config: RunConfig,
        output_dir: str | os.PathLike,
        status: str = "running",
    ) -> str:
        """Record a new run with a snapshot of its config and library versions; returns its id.

        ``status`` is 'running' (started now) or 'queued' (started when set to 'running').
        """
        if status not in ("running", "queued"):
            raise ValueError(f"a run starts 'running' or 'queued', not {status!r}")
        snapshot = json.dumps(config.to_dict())
        run_id = str(uuid.uuid4())
        now = timestamp()
        row = {
            "id": run_id,
            "project_id": project_id,
            "name": config.name,
            "method": config.method.name,
            "config_json": snapshot,
            "base_dir": str(config.base_dir) if config.base_dir is not None else None,
            "status": status,
            "created": now,
            "started": now if status == "running" else None,
            "ended": None,
            "seed": config.training.seed,
            "torch_version": package_version("torch"),
            "transformers_version": package_version("transformers"),
            "peft_version": package_version("peft"),
            "output_dir": str(Path(output_dir).expanduser().absolute()),
            "error": None,
        }
        with self._write():
            if not list(self.db.query("SELECT 1 FROM projects WHERE id = ?", [project_id])):
                raise UserError(
                    f"There is no project {project_id} in the project store {self.path}",
                    "Open or create the project first.",
                )
            self.db["runs"].insert(row)
        return run_id

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Change a run's status; a terminal status sets ``ended``, 'running' sets ``started``."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {', '.join(STATUSES)}")
        with self._write():
            run = self._require_run(run_id)
            changes: dict[str, Any] = {"status": status}
            if status in TERMINAL_STATUSES:
                changes["ended"] = timestamp()
            else:
                changes["ended"] = None
            if status == "running" and run["started"] is None:
                changes["started"] = timestamp()
            if error is not None or status not in TERMINAL_STATUSES:
                # The error explains how a run ended; a resumed run starts without one.
                changes["error"] = error
            self.db["runs"].update(run_id, changes)

    def runs(self, project_id: int | None = None) -> list[dict]:
        """Runs, oldest first; all of them or those of one project."""
        with self._read():
            if project_id is None:
                return list(self.db.query("SELECT * FROM runs ORDER BY created, rowid"))
            return list(
                self.db.query("SELECT * FROM runs WHERE project_id = ? ORDER BY created, rowid", [project_id])
            )

    def run(self, run_id: str) -> dict:
        with self._read():
            return self._require_run(run_id)

    def run_config(self, run_id: str) -> RunConfig:
        """The config snapshot a run was started with (relative paths resolve as they did)."""
        row = self.run(run_id)
        return RunConfig.from_dict(
            json.loads(row["config_json"]), base_dir=row["base_dir"], source=f"the config of run {run_id}"
        )

    def set_output_dir(self, run_id: str, output_dir: str | os.PathLike) -> None:
        """Point a run at its folder (named after the id that start_run returned)."""
        with self._write():
            self.db["runs"].update(run_id, {"output_dir": str(Path(output_dir).absolute())})

    def set_run_config(self, run_id: str, config: RunConfig) -> None:
        """Replace a run's config snapshot: a resumed run goes on with settings that may change on
        resume (a lower learning rate, say), and its record says what it now runs with."""
        with self._write():
            self._require_run(run_id)
            self.db["runs"].update(run_id, {"config_json": json.dumps(config.to_dict())})

    def delete_run(self, run_id: str) -> None:
        """Delete a run's rows (metrics, evaluations, artifacts too). Files on disk stay."""
        with self._write():
            self._require_run(run_id)
            for table in ("metrics", "evaluations", "artifacts"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self.db["runs"].delete(run_id)

    # ---- metrics -----------------------------------------------------------------------------

    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float | None]) -> None:
        """Record metric values of one step; ``None`` means missing, NaN and ±inf are kept."""
        self.log_metrics_batch(run_id, [(step, values)])

    def log_metrics_batch(self, run_id: str, entries: Iterable[tuple[int, Mapping[str, float | None]]], *,
                          replace_after: int | None = None) -> None:
        """Record several steps in one transaction (for callers that buffer). ``replace_after``: first
        forget the run's metrics past that step (a resumed run trains them again), in the same
        transaction, so that the history is never without them."""
        rows = []
        for step, values in entries:
            for key, raw in values.items():
                value, special = encode_metric(raw)
                rows.append({"run_id": run_id, "key": key, "step": int(step), "value": value, "special": special})
        if not rows:
            return
        try:
            with self._write():
                if replace_after is not None:
                    self.db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", [run_id, replace_after])
                self.db["metrics"].insert_all(rows, batch_size=500)
        except sqlite3.IntegrityError:
            raise UserError(
                f"There is no run {run_id} in the project store {self.path}",
                "Start the run before logging its metrics.",
            ) from None

    def metrics(self, run_id: str, key: str | None = None) -> list[tuple[str, int, float | None]]:
        """``(key, step, value)`` ordered by key then step; missing values read back as None."""
        sql = "SELECT key, step, value, special FROM metrics WHERE run_id = ?"
        params: list[Any] = [run_id]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        sql += " ORDER BY key, step, rowid"
        with self._read():
            return [
                (r["key"], r["step"], decode_metric(r["value"], r["special"])) for r in self.db.query(sql, params)
            ]

    def metric_history(self, run_id: str, *, through_step: int | None = None) -> dict[str, list[tuple[int, float | None]]]:
        """Every metric of a run as ``{key: [(step, value), ...]}`` in step order (up to
        ``through_step``): the whole history of a resumed run, its earlier sessions included."""
        history: dict[str, list[tuple[int, float | None]]] = {}
        for key, step, value in self.metrics(run_id):
            if through_step is None or step <= through_step:
                history.setdefault(key, []).append((step, value))
        return history

    # ---- evaluations -------------------------------------------------------------------------

    def add_evaluation(
        self,
        run_id: str,
        phase: str,
        suite: str,
        aggregates: Mapping[str, Any],
        items_path: str | os.PathLike | None = None,
    ) -> int:
        """Record an evaluation's aggregate numbers (per-item results live in ``items_path``)."""
        if phase not in PHASES:
            raise ValueError(f"evaluation phase must be 'before' or 'after', not {phase!r}")
        row = {
            "run_id": run_id,
            "phase": phase,
            "suite": suite,
            # Python's json keeps NaN and ±inf (as NaN/Infinity), which evaluation may produce.
            "aggregates_json": json.dumps(dict(aggregates)),
            "items_path": str(Path(items_path).expanduser().absolute()) if items_path is not None else None,
            "created": timestamp(),
        }
        with self._write():
            self._require_run(run_id)
            return int(self.db["evaluations"].insert(row).last_pk)

    def evaluations(self, run_id: str) -> list[dict]:
        """Evaluations of a run, oldest first; ``aggregates`` holds the decoded numbers."""
        with self._read():
            rows = list(self.db.query("SELECT * FROM evaluations WHERE run_id = ? ORDER BY id", [run_id]))
        for row in rows:
            row["aggregates"] = json.loads(row["aggregates_json"])
        return rows

    # ---- artifacts ---------------------------------------------------------------------------

    def add_artifact(self, run_id: str, kind: str, path: str | os.PathLike) -> int:
        """Record a file (or folder) a run produced, with its SHA-256 and size."""
        path = Path(path).expanduser().absolute()
        if not path.exists():
            raise UserError(
                f"The artifact {path} does not exist",
                "Record an artifact after the file has been written.",
            )
        # Hash outside the lock: a large file must not stall metric logging from another thread.
        digest, size = file_digest(path)
        row = {
            "run_id": run_id,
            "kind": kind,
            "path": str(path),
            "sha256": digest,
            "bytes": size,
            "created": timestamp(),
        }
        with self._write():
            self._require_run(run_id)
            return int(self.db["artifacts"].insert(row).last_pk)

    def artifacts(self, run_id: str) -> list[dict]:
        with self._read():
            return list(self.db.query("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", [run_id]))
