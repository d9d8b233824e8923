"""The export dialog (the folder loads with PeftModel.from_pretrained; checks and card shown; bad
destinations refused) and the combine-adapters (Ext-Sub) dialog."""

from __future__ import annotations

import pytest
from peft import PeftModel
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QMessageBox
from trained_run import add_run, trained_run  # noqa: E402
from transformers import AutoModelForCausalLM

from unlearn_studio.core.paths import demo_model_dir  # noqa: E402
from unlearn_studio.core.project.store import Store  # noqa: E402
from unlearn_studio.gui.export_dialog import ExportDialog  # noqa: E402
from unlearn_studio.gui.extsub_dialog import ExtSubDialog  # noqa: E402
from unlearn_studio.gui.jobs import Jobs  # noqa: E402

EXPORT_MS = 300_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def store(run):
    with Store.open(run.store_path) as opened:
        yield opened


pytestmark = pytest.mark.slow  # every test here uses the trained run


@pytest.fixture
def jobs():
    runner = Jobs()
    yield runner
    runner.wait()


def error_shown(words: str) -> bool:
    """Whether an error dialog shown so far says ``words`` (Qt lists widgets in no particular order)."""
    from PySide6.QtWidgets import QApplication

    return any(words in box.text() for box in QApplication.allWidgets()
               if isinstance(box, QMessageBox) and box.objectName() == "errorDialog")


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_export_writes_a_folder_that_peft_loads_and_shows_the_checks(qtbot, jobs, store, run, tmp_path, screenshot):
    dialog = ExportDialog(store, run.run_id, jobs)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.heading.text() == f"Export run {run.run_id[:8]} GradDiff (finished)"
    assert dialog.destination.text() == str(run.adapter_dir.parent / "export")  # suggested: inside the run folder
    out = tmp_path / "exported"
    dialog.destination.setText(str(out))
    dialog.merged.setChecked(True)
    assert "exported-merged" in dialog.merged.text()
    screenshot(dialog, "export_dialog")

    with qtbot.waitSignal(dialog.export_finished, timeout=EXPORT_MS) as blocker:
        click(qtbot, dialog.export_button)
        assert not dialog.close_button.isEnabled()  # closing waits for the files
    result = blocker.args[0]
    assert result.ok and dialog.status.text().startswith(f"Exported to {out} and {tmp_path / 'exported-merged'}")
    assert dialog.checks.text().count("✓") == len(result.checks) >= 3 and "✗" not in dialog.checks.text()
    assert "Checks made at export" in dialog.card.toPlainText()
    assert not dialog.export_button.isEnabled() and dialog.close_button.isEnabled()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(demo_model_dir()), out)
    assert any("lora_B" in name for name, _ in model.named_parameters())
    screenshot(dialog, "export_dialog_done")


def test_export_refuses_a_folder_that_is_not_empty(qtbot, jobs, store, run, tmp_path):
    dialog = ExportDialog(store, run.run_id, jobs)
    qtbot.addWidget(dialog)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    dialog.destination.setText(str(busy))
    click(qtbot, dialog.export_button)
    assert "did not write" in dialog.status.text() and not jobs.busy
    assert error_shown("did not write")
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]


def test_a_run_without_an_adapter_cannot_be_exported(qtbot, jobs, store, run, tmp_path, screenshot):
    failed = add_run(store, run.config, tmp_path, status="failed")
    dialog = ExportDialog(store, failed, jobs)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.export_button.isEnabled()
    assert "failed, so it has no final adapter" in dialog.status.text()
    screenshot(dialog, "export_dialog_no_adapter")


def extsub_dialog(qtbot, jobs, store, run, **options) -> ExtSubDialog:
    project_id = store.run(run.run_id)["project_id"]
    dialog = ExtSubDialog(jobs, store, project_id, run.config, **options)
    qtbot.addWidget(dialog)
    return dialog


def test_extsub_dialog_combines_two_adapters_into_a_run_of_the_project(qtbot, jobs, store, run, tmp_path,
                                                                        screenshot):
    anti = add_run(store, run.config, tmp_path, adapter_from=run.adapter_dir, scale_b=-0.5)
    dialog = extsub_dialog(qtbot, jobs, store, run, adapters={"the expert run": run.adapter_dir})
    dialog.show()
    picker = dialog.findChild(QComboBox, "expertEditRuns")
    picker.textActivated.emit("the expert run")  # a run's adapter, picked from the list
    assert dialog.expert.text() == str(run.adapter_dir)
    dialog.anti_expert.setText(str(tmp_path / anti / "adapter"))
    out = tmp_path / "combined"
    dialog.output.setText(str(out))
    dialog.operation.setCurrentIndex(dialog.operation.findData("negation"))
    assert not dialog.anti_expert.isEnabled() and "not used" in dialog.operation_help.text()
    dialog.operation.setCurrentIndex(dialog.operation.findData("ext-sub"))
    assert dialog.anti_expert.isEnabled() and "Ext-Sub" in dialog.operation_help.text()
    screenshot(dialog, "extsub_dialog")

    with qtbot.waitSignal(dialog.combined, timeout=EXPORT_MS) as blocker:
        click(qtbot, dialog.combine_button)
    run_id = blocker.args[0]
    row = store.run(run_id)
    assert row["status"] == "finished" and row["method"] == "ext_sub" and row["project_id"] == store.run(run.run_id)["project_id"]
    assert dialog.result_dir == out / "adapter" and (out / "adapter" / "adapter_config.json").is_file()
    assert "listed with the project's runs" in dialog.status.text()
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(demo_model_dir()), out / "adapter")
    export = ExportDialog(store, run_id, jobs)  # the combined adapter exports like any run's
    qtbot.addWidget(export)
    assert export.export_button.isEnabled()
    screenshot(dialog, "extsub_dialog_done")


def test_the_same_adapter_twice_is_refused_before_anything_runs(qtbot, jobs, store, run, tmp_path):
    dialog = extsub_dialog(qtbot, jobs, store, run)
    dialog.expert.setText(str(run.adapter_dir))
    dialog.anti_expert.setText(str(run.adapter_dir) + "/")
    dialog.output.setText(str(tmp_path / "out"))
    click(qtbot, dialog.combine_button)
    assert "same adapter" in dialog.status.text() and not jobs.busy
    assert error_shown("same adapter")
    assert not (tmp_path / "out").exists()


def test_extsub_dialog_shows_what_is_missing(qtbot, jobs, store, run, tmp_path):
    dialog = extsub_dialog(qtbot, jobs, store, run)
    click(qtbot, dialog.combine_button)
    assert dialog.status.text() == "No expert adapter folder is given. Choose the expert adapter folder."
    assert not jobs.busy
    dialog.expert.setText(str(tmp_path / "nowhere"))
    dialog.anti_expert.setText(str(tmp_path / "nowhere-either"))
    dialog.output.setText(str(tmp_path / "out"))
    click(qtbot, dialog.combine_button)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=EXPORT_MS)
    assert error_shown("nowhere") and "nowhere" in dialog.status.text()
    assert not (tmp_path / "out").exists()
