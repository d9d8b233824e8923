"""Project store: schema, metrics encoding, the single-writer lock, refusals that write nothing."""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.project.store_open import default_store_path

TABLES = {"projects", "runs", "metrics", "evaluations", "artifacts", "_sqlite_migrations"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "projects.db"


@pytest.fixture
def store(db_path: Path):
    s = Store.open(db_path)
    yield s
    s.close()


def new_run(store: Store, tmp_path: Path, **config_kwargs) -> str:
    project = store.create_project("p", tmp_path / "p.toml")
    config = RunConfig(name="run", **config_kwargs)
    return store.start_run(project, config, tmp_path / "out")


# ---- schema ----------------------------------------------------------------------------------


def test_schema_created_and_reopen_is_idempotent(db_path):
    with Store.open(db_path) as s:
        assert TABLES <= set(s.db.table_names())
        assert s.db.journal_mode == "wal"
        s.create_project("p", "/x/p.toml")
        applied = list(s.db.query("SELECT name FROM _sqlite_migrations"))
    with Store.open(db_path) as s:
        assert list(s.db.query("SELECT name FROM _sqlite_migrations")) == applied
        assert [p["name"] for p in s.projects()] == ["p"]
    index_columns = [ix.columns for ix in sqlite3_indexes(db_path, "metrics")]
    assert ["run_id", "key", "step"] in index_columns


def sqlite3_indexes(path: Path, table: str):
    from sqlite_utils import Database

    db = Database(path)
    try:
        return db[table].indexes
    finally:
        db.close()


def test_default_path_is_under_user_data_dir():
    path = default_store_path()
    assert path.name == "projects.db" and "unlearn-studio" in str(path)


# ---- runs ------------------------------------------------------------------------------------


def test_run_lifecycle_and_config_snapshot(store, tmp_path):
    project = store.create_project("Demo", tmp_path / "demo.toml")
    assert store.projects()[0]["path"] == str(tmp_path / "demo.toml")
    assert store.ensure_project("Demo", tmp_path / "demo.toml") == project
    config = RunConfig(name="first", base_dir=tmp_path)
    config.training.seed = 7
    run_id = store.start_run(project, config, tmp_path / "out")
    row = store.run(run_id)
    assert row["status"] == "running" and row["started"] and row["ended"] is None
    assert row["seed"] == 7 and row["method"] == "grad_diff"
    assert row["torch_version"] and row["output_dir"] == str(tmp_path / "out")
    assert store.run_config(run_id) == config
    assert store.run_config(run_id).base_dir == tmp_path

    store.set_status(run_id, "failed", error="boom")
    row = store.run(run_id)
    assert row["status"] == "failed" and row["ended"] and row["error"] == "boom"
    assert [r["id"] for r in store.runs(project)] == [run_id]
    assert store.runs(project + 1) == []


def test_queued_run_gets_started_when_running(store, tmp_path):
    project = store.create_project("p", None)
    run_id = store.start_run(project, RunConfig(name="q"), tmp_path, status="queued")
    assert store.run(run_id)["started"] is None
    store.set_status(run_id, "running")
    assert store.run(run_id)["started"] is not None


def test_unknown_ids_and_statuses(store, tmp_path):
    with pytest.raises(UserError, match="no run"):
        store.run("nope")
    with pytest.raises(UserError, match="no project"):
        store.start_run(99, RunConfig(name="x"), tmp_path)
    run_id = new_run(store, tmp_path)
    with pytest.raises(ValueError):
        store.set_status(run_id, "done")
    with pytest.raises(UserError, match="no run"):
        store.log_metrics("nope", 0, {"loss": 1.0})


def test_interrupted_runs_marked_on_reopen(db_path, tmp_path):
    with Store.open(db_path) as s:
        running = new_run(s, tmp_path)
        paused = new_run(s, tmp_path)
        s.set_status(paused, "paused")
        done = new_run(s, tmp_path)
        s.set_status(done, "finished")
    with Store.open(db_path) as s:
        assert sorted(s.interrupted) == sorted([running, paused])
        assert s.run(running)["status"] == "interrupted" and s.run(running)["ended"]
        assert s.run(paused)["status"] == "interrupted"
        assert s.run(done)["status"] == "finished"
    with Store.open(db_path) as s:
        assert s.interrupted == []


def test_delete_run_removes_rows_not_files(store, tmp_path):
    run_id = new_run(store, tmp_path)
    artifact = tmp_path / "adapter.safetensors"
    artifact.write_bytes(b"weights")
    store.log_metrics(run_id, 0, {"loss": 1.0})
    store.add_evaluation(run_id, "after", "fast", {"prob": 0.5})
    store.add_artifact(run_id, "adapter", artifact)
    store.delete_run(run_id)
    assert store.runs() == [] and store.metrics(run_id) == []
    assert store.evaluations(run_id) == [] and store.artifacts(run_id) == []
    assert artifact.read_bytes() == b"weights"


# ---- metrics ---------------------------------------------------------------------------------


def test_nan_inf_and_missing_stay_distinguishable(store, tmp_path):
    run_id = new_run(store, tmp_path)
    store.log_metrics(run_id, 3, {"a": float("nan"), "b": float("inf"), "c": float("-inf"), "d": None, "e": 0.25})
    got = {key: value for key, _, value in store.metrics(run_id)}
    assert math.isnan(got["a"])
    assert got["b"] == math.inf and got["c"] == -math.inf
    assert got["d"] is None
    assert got["e"] == 0.25
    raw = {r["key"]: (r["value"], r["special"]) for r in store.db.query("SELECT * FROM metrics")}
    assert raw["a"] == (None, "nan") and raw["d"] == (None, None)


def test_metrics_by_key_in_step_order(store, tmp_path):
    run_id = new_run(store, tmp_path)
    for step in (2, 0, 1):
        store.log_metrics(run_id, step, {"loss": step / 10, "lr": 1e-4})
    assert store.metrics(run_id, "loss") == [("loss", 0, 0.0), ("loss", 1, 0.1), ("loss", 2, 0.2)]
    assert len(store.metrics(run_id)) == 6


def test_metrics_logged_from_a_worker_thread(store, tmp_path):
    run_id = new_run(store, tmp_path)
    errors: list[BaseException] = []

    def work():
        try:
            for step in range(200):
                store.log_metrics(run_id, step, {"loss": float(step)})
        except BaseException as e:
            errors.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    # Reads from this thread while the worker writes.
    while worker.is_alive():
        store.metrics(run_id, "loss")
    worker.join()
    assert errors == []
    assert [v for _, _, v in store.metrics(run_id, "loss")] == [float(s) for s in range(200)]


# ---- evaluations and artifacts ---------------------------------------------------------------


def test_evaluations_round_trip(store, tmp_path):
    run_id = new_run(store, tmp_path)
    store.add_evaluation(run_id, "before", "demo", {"forget_prob": 0.9, "fq": float("nan")}, tmp_path / "i.json")
    store.add_evaluation(run_id, "after", "demo", {"forget_prob": 0.1})
    evals = store.evaluations(run_id)
    assert [e["phase"] for e in evals] == ["before", "after"]
    assert evals[0]["aggregates"]["forget_prob"] == 0.9 and math.isnan(evals[0]["aggregates"]["fq"])
    assert evals[0]["items_path"] == str(tmp_path / "i.json") and evals[1]["items_path"] is None
    with pytest.raises(ValueError):
        store.add_evaluation(run_id, "during", "demo", {})


def test_artifact_sha256_and_size(store, tmp_path):
    run_id = new_run(store, tmp_path)
    payload = os.urandom(3 * (1 << 20) + 17)
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(payload)
    store.add_artifact(run_id, "adapter", path)
    (row,) = store.artifacts(run_id)
    assert row["sha256"] == hashlib.sha256(payload).hexdigest()
    assert row["bytes"] == len(payload) and row["path"] == str(path) and row["kind"] == "adapter"
    with pytest.raises(UserError, match="does not exist"):
        store.add_artifact(run_id, "adapter", tmp_path / "missing.bin")


def test_artifact_folder_digest_changes_with_content(store, tmp_path):
    run_id = new_run(store, tmp_path)
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "a.json").write_text("{}")
    (folder / "b.bin").write_bytes(b"12345")
    store.add_artifact(run_id, "adapter", folder)
    (folder / "b.bin").write_bytes(b"12346")
    store.add_artifact(run_id, "adapter", folder)
    first, second = store.artifacts(run_id)
    assert first["bytes"] == 7 and first["sha256"] != second["sha256"]


# ---- one writer, readers, refusals -----------------------------------------------------------


def test_second_writer_is_refused(db_path):
    first = Store.open(db_path)
    try:
        with pytest.raises(UserError) as info:
            Store.open(db_path)
        assert "in use by another Unlearn Studio process" in info.value.problem
        assert str(db_path) in info.value.problem
        assert "--store PATH" in info.value.fix
    finally:
        first.close()
    Store.open(db_path).close()  # the lock is released on close


def test_reader_needs_no_lock(db_path, tmp_path):
    writer = Store.open(db_path)
    try:
        run_id = new_run(writer, tmp_path)
        writer.log_metrics(run_id, 0, {"loss": 2.0})
        with Store.open(db_path, readonly=True) as reader:
            assert reader.metrics(run_id) == [("loss", 0, 2.0)]
            with pytest.raises(RuntimeError):
                reader.create_project("x", None)
    finally:
        writer.close()
    with Store.open(db_path, readonly=True) as reader:
        assert reader.run(run_id)["status"] == "running"  # readers never mark runs interrupted


def test_reader_of_missing_store(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Store.open(tmp_path / "none.db", readonly=True)
    assert not (tmp_path / "none.db").exists()


def test_parent_is_a_file_writes_nothing(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(UserError) as info:
        Store.open(blocker / "projects.db")
    assert str(blocker / "projects.db") in info.value.problem
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]


def test_missing_folder_writes_nothing(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Store.open(tmp_path / "missing" / "projects.db")
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_writes_nothing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        with pytest.raises(UserError, match="read-only"):
            Store.open(folder / "projects.db")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_read_only_folder_check_as_root(tmp_path, monkeypatch):
    """As root chmod cannot make a folder read-only, so the permission answer is faked."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(UserError, match="read-only folder"):
        Store.open(tmp_path / "projects.db")
    assert list(tmp_path.iterdir()) == []


def test_read_only_file_check(db_path, monkeypatch):
    Store.open(db_path).close()
    before = sorted(p.name for p in db_path.parent.iterdir())
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == db_path else real_access(p, mode))
    with pytest.raises(UserError, match="is read-only"):
        Store.open(db_path)
    assert sorted(p.name for p in db_path.parent.iterdir()) == before


def test_not_a_sqlite_file_writes_nothing(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(UserError) as info:
            Store.open(path, readonly=readonly)
        assert str(path) in info.value.problem and "not" in info.value.problem
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(UserError, match="not an Unlearn Studio project store"):
        Store.open(path)
    assert path.read_bytes() == before


def test_locked_database_is_refused_and_unchanged(db_path, tmp_path):
    with Store.open(db_path) as s:
        run_id = new_run(s, tmp_path)  # left 'running': a writer open would mark it interrupted
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError) as info:
            Store.open(db_path, busy_timeout_ms=50)
        assert "locked" in info.value.problem and str(db_path) in info.value.problem
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Store.open(db_path, readonly=True) as reader:
        assert reader.run(run_id)["status"] == "running"


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with Store.open(path) as s:
        assert TABLES <= set(s.db.table_names())


def test_closed_store_refuses_calls(db_path):
    s = Store.open(db_path)
    s.close()
    s.close()
    with pytest.raises(RuntimeError):
        s.projects()


def test_a_resumed_runs_first_metrics_replace_those_past_its_checkpoint(tmp_path):
    from unlearn_studio.core.project.config import RunConfig

    with Store.open(tmp_path / "s.db") as store:
        project = store.create_project("p", tmp_path / "p.toml")
        run_id = store.start_run(project, RunConfig(name="p"), tmp_path / "out")
        for step in range(1, 6):
            store.log_metrics(run_id, step, {"loss/total": float(step)})
        # Resumed from step 3: steps 4 and 5 are trained again and logged anew, in one transaction.
        store.log_metrics_batch(run_id, [(4, {"loss/total": 40.0})], replace_after=3)
        assert [(s, v) for _, s, v in store.metrics(run_id)] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


def test_a_run_records_its_folder(tmp_path):
    from unlearn_studio.core.project.config import RunConfig

    with Store.open(tmp_path / "s.db") as store:
        project = store.create_project("p", tmp_path / "p.toml")
        run_id = store.start_run(project, RunConfig(name="p"), tmp_path / "out")
        store.set_output_dir(run_id, tmp_path / "out" / run_id)
        assert store.run(run_id)["output_dir"] == str((tmp_path / "out" / run_id).absolute())


def test_a_resumed_run_with_changed_settings_keeps_the_new_config(tmp_path):
    from unlearn_studio.core.project.config import RunConfig

    with Store.open(tmp_path / "s.db") as store:
        project = store.create_project("p", tmp_path / "p.toml")
        config = RunConfig(name="p")
        run_id = store.start_run(project, config, tmp_path / "out")
        config.optimizer.lr = 1e-5
        store.set_run_config(run_id, config)
        assert store.run_config(run_id).optimizer.lr == 1e-5
