"""Projects (issue 17, item 6): a clone gets a name no project has, a project can be taken off the
list (its files stay unless asked), and Re-run asks first."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.projects_panel import distinct_name

WAIT_MS = 120_000


def recorded_run(window, project: Path, status: str = "finished", folder: Path | None = None) -> str:
    """A run in the store (nothing trained): what the table lists and the actions act on."""
    config = RunConfig.load(project)
    project_id = window.store.ensure_project(config.name, project)
    run_id = window.store.start_run(project_id, config, folder or project.parent / "runs")
    window.store.set_status(run_id, status)
    return run_id


def test_distinct_names_count_up():
    assert distinct_name("Demo", {"Demo"}) == "Demo (2)"
    assert distinct_name("Demo (2)", {"Demo", "Demo (2)", "Demo (3)"}) == "Demo (4)"
    assert distinct_name("Mine", {"Demo"}) == "Mine"


def test_a_clone_gets_a_name_no_project_has_and_a_new_file(qtbot, window, screenshots):
    assert window.open_project(demo_project())
    run_id = recorded_run(window, demo_project())
    window.runs.refresh()
    window.runs.table.select_runs([run_id])
    wizard = window.manager.clone_run()
    qtbot.addWidget(wizard)
    name = RunConfig.load(demo_project()).name
    assert wizard.draft.name == f"{name} (2)"
    assert not wizard.unchanged() and wizard.suggest_path() != demo_project()
    wizard.close()


def test_the_review_page_warns_about_a_name_another_project_has(qtbot, window, short_project):
    other = short_project("other.toml", name="Taken name")
    assert window.open_project(other)
    assert window.open_project(demo_project())
    wizard = window.manager.new_run()
    qtbot.addWidget(wizard)
    qtbot.waitUntil(lambda: bool(wizard.methods), timeout=WAIT_MS)
    review = wizard.review_page
    review.name.setText("Taken name")
    review.name.textEdited.emit("Taken name")
    assert review.name_note.isVisibleTo(review) and "Taken name (2)" in review.name_note.text()
    review.name.setText("A new name")
    review.name.textEdited.emit("A new name")
    assert not review.name_note.isVisibleTo(review)
    wizard.close()


def test_a_project_can_be_removed_from_the_list_and_its_files_stay(qtbot, window, short_project, tmp_path,
                                                                    screenshots):
    mine = short_project("mine.toml", name="Mine")
    assert window.open_project(mine)
    assert window.open_project(demo_project())
    folder = tmp_path / "runs" / "kept"
    folder.mkdir(parents=True)
    run_id = recorded_run(window, mine, folder=folder)
    assert "Mine" in window.projects.names()
    screenshots(window, "projects_list")
    entry = next(e for e in window.projects.entries if e.name == "Mine")
    assert window.remove_project(entry, confirm=False)
    assert "Mine" not in window.projects.names()
    assert mine.is_file() and folder.is_dir()  # nothing on disk was touched
    assert window.store.run(run_id)["id"] == run_id  # its runs stay in the store, unless asked
    assert window.open_project(mine)  # opening the file again brings it back, with its runs
    assert "Mine" in window.projects.names() and run_id in window.runs.table.run_ids()


def test_removing_with_its_runs_deletes_only_the_folders_the_app_made(qtbot, window, short_project, tmp_path):
    from unlearn_studio.core.files import mark_as_own

    mine = short_project("mine.toml", name="Mine")
    assert window.open_project(mine)
    ours, theirs = tmp_path / "runs" / "ours", tmp_path / "runs" / "theirs"
    for folder in (ours, theirs):
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("x")
    mark_as_own(ours, "run")
    runs = [recorded_run(window, mine, folder=ours), recorded_run(window, mine, folder=theirs)]
    entry = next(e for e in window.projects.entries if e.name == "Mine")
    assert window.remove_project(entry, confirm=False, delete_runs=True)
    assert not ours.exists() and (theirs / "notes.txt").is_file()
    assert not any(run["id"] in runs for run in window.store.runs())
    assert str(theirs) in window.statusBar().currentMessage()


def test_the_remove_dialog_offers_the_runs_with_files_kept_by_default(qtbot, window, short_project, monkeypatch):
    from unlearn_studio.gui.projects_panel import RemoveProjectDialog

    mine = short_project("mine.toml", name="Mine")
    assert window.open_project(mine)
    recorded_run(window, mine)
    seen = []

    def answer(dialog):
        seen.append((dialog.text(), dialog.informativeText(), dialog.delete_runs.isChecked()))
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(RemoveProjectDialog, "exec", answer)
    entry = next(e for e in window.projects.entries if e.name == "Mine")
    assert not window.remove_project(entry)
    text, informative, delete_checked = seen[0]
    assert "Mine" in text and "stays where it is" in informative and not delete_checked
    assert "Mine" in window.projects.names()


def test_rerun_asks_first_and_does_nothing_when_declined(qtbot, window, monkeypatch):
    assert window.open_project(demo_project())
    run_id = recorded_run(window, demo_project())
    window.runs.refresh()
    window.runs.table.select_runs([run_id])
    asked, started = [], []
    monkeypatch.setattr(window.manager, "start_run", lambda config, **kw: started.append(config))
    monkeypatch.setattr(QMessageBox, "question",
                        lambda parent, title, text, *a: asked.append(text) or QMessageBox.StandardButton.No)
    assert window.manager.rerun() is None
    assert started == [] and "100 steps" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    window.manager.rerun()
    assert len(started) == 1 and started[0].name == RunConfig.load(demo_project()).name
