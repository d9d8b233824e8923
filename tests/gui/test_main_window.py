"""The main window opens the demo project and lists its data sets and the model's facts (the
``window`` fixture, a complete window on a new store, is in conftest.py)."""

from PySide6.QtWidgets import QLabel, QMessageBox

from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store import Store
from unlearn_studio.gui.app import open_store

SUMMARY_TIMEOUT_MS = 60_000


def open_and_wait(qtbot, win, project) -> bool:
    with qtbot.waitSignal(win.page.summaries_done, timeout=SUMMARY_TIMEOUT_MS):
        opened = win.open_project(project)
    return opened


def form_values(win) -> dict[str, str]:
    form = win.page.model_form
    values = {}
    for row in range(form.rowCount()):
        label = form.itemAt(row, form.ItemRole.LabelRole).widget()
        field = form.itemAt(row, form.ItemRole.FieldRole).widget()
        values[label.text().rstrip(":")] = field.text() if isinstance(field, QLabel) else ""
    return values


def table_rows(win) -> list[list[str]]:
    table = win.page.datasets
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def project_names(win) -> list[str]:
    return win.projects.names()


def test_demo_project_lists_data_sets_and_model_facts(qtbot, window, screenshots):
    assert open_and_wait(qtbot, window, demo_project())
    config = RunConfig.load(demo_project())
    assert window.windowTitle().startswith(config.name)

    rows = table_rows(window)
    assert [r[0] for r in rows] == list(config.data)
    for role, _path, fmt, _kind, count, check in rows:
        assert fmt == "jsonl" and check == "OK", role
        assert int(count.replace(",", "")) > 0

    facts = form_values(window)
    assert facts["Architecture"].startswith("LlamaForCausalLM")
    assert facts["Layers"] == "4"
    assert "q: " in facts["LoRA targets"] and "down: " in facts["LoRA targets"]

    window.page.tabs.setCurrentIndex(0)
    screenshots(window, "main_window_runs_empty")
    window.page.tabs.setCurrentIndex(1)
    screenshots(window, "main_window_datasets")
    window.page.tabs.setCurrentIndex(2)
    screenshots(window, "main_window_model")
    window.page.tabs.setCurrentIndex(3)
    assert window.page.toml.toPlainText() == config.to_toml()
    screenshots(window, "main_window_config")


def test_opening_registers_the_project_in_the_store(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, demo_project())
    open_and_wait(qtbot, window, demo_project())  # opening again does not add a second entry
    assert [p["path"] for p in window.store.projects()] == [str(demo_project())]
    assert window.projects.list.count() == 1


def test_bad_data_file_is_shown_in_its_row(qtbot, window, tmp_path):
    project = tmp_path / "broken.toml"
    project.write_text(
        'name = "Broken"\n[data.forget]\npath = "missing.jsonl"\n[data.retain]\npath = "demo:retain.jsonl"\n',
        encoding="utf-8",
    )
    assert open_and_wait(qtbot, window, project)
    rows = {r[0]: r for r in table_rows(window)}
    assert "missing.jsonl" in rows["forget"][-1] and "What to do" in rows["forget"][-1]
    assert rows["retain"][-1] == "OK"
    screenshot_free = window.page.datasets.item(0, 5).foreground().color().name()
    assert screenshot_free != "#000000"  # problems are drawn in red, not like ordinary text


def test_malformed_project_file_shows_the_error_dialog_and_keeps_the_current_project(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, demo_project())
    shown_before = window.page.title.text()
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[lora]\nrank = 8\n', encoding="utf-8")
    assert not window.open_project(bad)
    dialog = window.findChild(QMessageBox, "errorDialog")
    assert dialog is not None and "lora.rank" in dialog.text()
    assert window.page.title.text() == shown_before
    dialog.close()


def test_second_window_on_a_busy_store_opens_it_read_only(qtbot, window):
    second, problem = open_store(str(window.store.path))
    try:
        assert problem is not None and "in use" in problem.problem
        assert isinstance(second, Store) and second.readonly
    finally:
        second.close()


def test_application_has_the_desktop_entry_name_and_icon(qtbot):
    from unlearn_studio.core.paths import resources_dir
    from unlearn_studio.gui.app import create_application

    app = create_application()
    desktop = (resources_dir().parent / "packaging" / "unlearn-studio.desktop").read_text(encoding="utf-8")
    assert f"Name={app.applicationName()}" in desktop.splitlines()
    assert f"StartupWMClass={app.desktopFileName()}" in desktop.splitlines()
    assert not app.windowIcon().isNull()


def test_selecting_a_data_set_previews_its_first_rows(qtbot, window, screenshots):
    open_and_wait(qtbot, window, demo_project())
    window.page.tabs.setCurrentIndex(1)
    window.page.datasets.selectRow(1)  # retain
    preview = window.page.preview
    headers = preview.column_names()
    assert "question" in headers and "answer" in headers
    assert preview.rowCount() > 0
    first_answer = preview.item(0, headers.index("answer")).text()
    retain = window.page.summaries["retain"]
    assert first_answer == retain.preview[0]["answer"]
    assert "retain" in window.page.preview_label.text()
    screenshots(window, "main_window_preview")


def test_delete_run_never_deletes_a_folder_the_app_did_not_create(qtbot, window, tmp_path):
    """A run row whose output folder is the user's own (no run marker): the row goes, the folder stays."""
    assert open_and_wait(qtbot, window, demo_project())
    config = RunConfig.load(demo_project())
    project_id = window.store.ensure_project(config.name, demo_project())
    run_id = window.store.start_run(project_id, config, tmp_path)
    folder = tmp_path / "my-results"
    folder.mkdir()
    (folder / "thesis.txt").write_text("mine")
    window.store.set_output_dir(run_id, folder)
    window.store.set_status(run_id, "finished")
    window.runs.refresh()
    window.runs.table.select_runs([run_id])
    assert window.manager.delete_run(confirm=False, delete_files=True)
    assert (folder / "thesis.txt").read_text() == "mine"
    assert str(folder) in window.statusBar().currentMessage()
    assert run_id not in [run["id"] for run in window.store.runs()]


def test_the_data_sets_tab_never_shows_a_selected_row_beside_select_a_data_set(qtbot, window):
    """Issue 17, item 4: the first row is selected and its preview (or that it is being read) is said."""
    window.open_project(demo_project())
    page = window.page
    assert page.datasets.selectionModel().selectedRows()[0].row() == 0
    assert page.preview_label.text() in ("Reading the forget data…",) or page.preview_label.text().startswith(
        "Preview of forget")
    qtbot.waitUntil(lambda: "forget" in page.summaries, timeout=SUMMARY_TIMEOUT_MS)
    assert page.preview_label.text().startswith("Preview of forget") and page.preview.rowCount() > 0
