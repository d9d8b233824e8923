"""A run's evaluation as the app reads it: evaluate_run with progress and cancel, the judgement
read back from the run's files, and runs whose files are missing or of an older layout."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from trained_run import add_run, trained_run

from unlearn_studio.core.control import Cancelled
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.results.report import evaluate_run, load_run_report


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A store of its own holding a copy of the session's trained run (other modules share that one)."""
    trained = trained_run(tmp_path_factory)
    folder = tmp_path_factory.mktemp("report_run")
    with Store.open(folder / "store.db") as store:
        run_id = add_run(store, trained.config, folder, adapter_from=trained.adapter_dir)
    return SimpleNamespace(store_path=folder / "store.db", run_id=run_id)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """The app's cache folder (evaluation caches) inside the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.slow
def test_a_cancel_during_evaluation_records_nothing(run, isolated_cache):
    events = []
    with Store.open(run.store_path) as store:
        with pytest.raises(Cancelled):
            evaluate_run(store, run.run_id, progress=events.append, should_stop=lambda: len(events) >= 2)
        assert store.evaluations(run.run_id) == []
    assert len(events) == 2 and all(e.run_id == run.run_id for e in events)


@pytest.mark.slow
def test_evaluate_run_judges_the_run_from_its_files(run, isolated_cache):
    events = []
    with Store.open(run.store_path) as store:
        report = evaluate_run(store, run.run_id, progress=events.append)
        phases = [e["phase"] for e in store.evaluations(run.run_id)]
        again = load_run_report(store, run.run_id)
    assert phases == ["before", "after"]
    assert {e.phase for e in events} == {"before", "after"} and all(e.run_id == run.run_id for e in events)
    assert {e.set_name for e in events} >= {"reference model: forget", "forget", "forget.paraphrase", "retain"}
    judgement = report.judgement
    assert judgement is not None and report.complete and not report.note
    rows = {row.key: row for row in judgement.rows}
    # The run trained on the first forget person only: most forget answers stay, the retain set holds.
    assert rows["retain/value_acc"].verdict in ("reached", "none")
    assert rows["forget/value_acc"].target.kind == "reference"
    assert all(row.verdict in (None, "reached", "short", "none", "wrong_way", "overshot") for row in judgement.rows)
    assert sum(judgement.summary.values()) == len([r for r in judgement.headline if r.verdict])
    assert [r.key for r in again.judgement.rows] == [r.key for r in judgement.rows]
    assert report.items["forget"][0].after and report.items["forget"][0].before
    assert report.frontier and report.frontier[0].run_id == run.run_id


@pytest.mark.slow
def test_an_evaluation_file_of_an_older_layout_is_said_so(run, isolated_cache):
    with Store.open(run.store_path) as store:
        if not store.evaluations(run.run_id):
            evaluate_run(store, run.run_id)
        after = [e for e in store.evaluations(run.run_id) if e["phase"] == "after"][-1]
    items = Path(after["items_path"])
    old = json.loads(items.read_text(encoding="utf-8"))
    old.pop("format")  # what the evaluation wrote before it kept per-item values per metric
    items.write_text(json.dumps(old), encoding="utf-8")
    with Store.open(run.store_path) as store:
        report = load_run_report(store, run.run_id)
    assert report.judgement is None and "older version" in report.note and report.after
