"""Schema of the project store, as sqlite-migrate migrations.

Migrations only ever get appended: a store written by an older version is brought up to date on
open, and the names of applied migrations tell a newer store apart from one we can read.
"""

from __future__ import annotations

from sqlite_migrate import Migrations

MIGRATION_SET = "unlearn_studio"

migrations = Migrations(MIGRATION_SET)


@migrations()
def m001_initial(db) -> None:
    db["projects"].create(
        {"id": int, "name": str, "path": str, "created": str},
        pk="id",
        not_null={"name", "created"},
    )
    db["runs"].create(
        {
            "id": str,
            "project_id": int,
            "name": str,
            "method": str,
            "config_json": str,
            # Folder of the project TOML the config came from: relative data paths resolve there.
            "base_dir": str,
            "status": str,
            "created": str,
            "started": str,
            "ended": str,
            "seed": int,
            "torch_version": str,
            "transformers_version": str,
            "peft_version": str,
            "output_dir": str,
            "error": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        not_null={"project_id", "name", "config_json", "status", "created"},
    )
    db["runs"].create_index(["project_id"])
    db["runs"].create_index(["status"])
    db["metrics"].create(
        {"run_id": str, "key": str, "step": int, "value": float, "special": str},
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"run_id", "key", "step"},
    )
    db["metrics"].create_index(["run_id", "key", "step"])
    db["evaluations"].create(
        {
            "id": int,
            "run_id": str,
            "phase": str,
            "suite": str,
            "aggregates_json": str,
            "items_path": str,
            "created": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"run_id", "phase", "suite", "aggregates_json", "created"},
    )
    db["evaluations"].create_index(["run_id"])
    db["artifacts"].create(
        {
            "id": int,
            "run_id": str,
            "kind": str,
            "path": str,
            "sha256": str,
            "bytes": int,
            "created": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"run_id", "kind", "path", "sha256", "bytes", "created"},
    )
    db["artifacts"].create_index(["run_id"])
