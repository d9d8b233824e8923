"""A copy of the session's trained demo run (tests/core/trained_run.py) in a store of its own, for
the audit's tests (core and command line), which write audits into the run's folder."""

from __future__ import annotations

from types import SimpleNamespace

from trained_run import add_run, trained_run

from unlearn_studio.core.project.store import Store


def audited_run(tmp_path_factory, name: str) -> SimpleNamespace:
    """store_path, run_id, folder (the runs' folder) and trained (the session's TrainedRun)."""
    trained = trained_run(tmp_path_factory)
    folder = tmp_path_factory.mktemp(name)
    with Store.open(folder / "store.db") as store:
        run_id = add_run(store, trained.config, folder, adapter_from=trained.adapter_dir)
    return SimpleNamespace(store_path=folder / "store.db", run_id=run_id, trained=trained, folder=folder)
