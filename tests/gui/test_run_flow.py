"""The app end to end on the demo: the new-run wizard with GradDiff, a short run whose curves
arrive live, pause/resume, stop and save, evaluation, resume after quitting during a run, and
errors reaching the one dialog and the run's log. Every page is saved as a screenshot."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWizard

from unlearn_studio.core.events import StatusEvent, StepEvent
from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.app import open_store
from unlearn_studio.gui.main_window import MainWindow

WAIT_MS = 300_000  # generous: the test machine is shared; nothing waits this long when it is idle


def short_project(folder: Path, *, steps: int = 6, suite: str = "fast", checkpoint_every: int = 50,
                  forget: str = "demo:forget10.jsonl") -> Path:
    """GradDiff on a few demo rows: a run of seconds, with an evaluation of a few items."""
    path = folder / "short.toml"
    path.write_text(f"""
name = "Short GradDiff"
[model]
path = "demo"
device = "cpu"
[data.forget]
path = "{forget}"
max_rows = 8
template = "qa"
[data.retain]
path = "demo:retain.jsonl"
max_rows = 8
template = "qa"
[method]
name = "grad_diff"
[lora]
r = 4
alpha = 8.0
roles = ["q", "v"]
[optimizer]
lr = 5e-4
[training]
max_steps = {steps}
batch_size = 4
max_length = 48
checkpoint_every = {checkpoint_every}
[evaluation]
suite = "{suite}"
""", encoding="utf-8")
    return path


@pytest.fixture
def window(qtbot, tmp_path):
    store, problem = open_store(str(tmp_path / "store.db"))
    assert problem is None
    win = MainWindow(store)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    store.close()


def wait_for_status(qtbot, session, status: str):
    def is_status(event):
        return isinstance(event, StatusEvent) and event.status == status

    return qtbot.waitSignal(session.event, timeout=WAIT_MS, check_params_cb=is_status)


def start_short_run(qtbot, window, tmp_path, **kwargs):
    project = short_project(tmp_path, **kwargs)
    assert window.open_project(project)
    session = window.start_run(RunConfig.load(project))
    assert session is not None
    return project, session


def test_wizard_on_the_demo_with_graddiff_starts_a_run_whose_curves_arrive(qtbot, window, tmp_path, screenshot):
    assert window.open_project(demo_project())
    wizard = window.new_run()
    model = wizard.model_page
    qtbot.waitUntil(model.isComplete, timeout=WAIT_MS)
    assert "LlamaForCausalLM" in model.labels["Architecture"].text()
    assert "an estimate" in model.labels["Memory estimate"].text()
    screenshot(wizard, "wizard_1_model")

    wizard.next()
    method = wizard.method_page
    qtbot.waitUntil(lambda: method.method_cls is not None, timeout=WAIT_MS)
    titles = [method.list.item(i).text().split("\n")[0] for i in range(method.list.count())]
    assert {"GradDiff", "NPO", "RMU"} <= set(titles)
    method.select_method("grad_diff")
    assert method.method_cls.name == "grad_diff" and "2203.12817" in method.about.text()
    assert wizard.draft.optimizer.lr == RunConfig.load(demo_project().parent / "grad_diff.toml").optimizer.lr
    method.field("training.max_steps").widget.setText("6")
    method.field("evaluation.suite").widget.setCurrentText("none")
    method.field("param:retain_weight").widget.setText("-1")  # below the declared minimum
    assert not method.isComplete() and "retain_weight" in method.problems()[0]
    method.field("param:retain_weight").widget.setText("2")
    assert method.isComplete()
    assert "retain_weight = 2.0" in method.toml.toPlainText() and "max_steps = 6" in method.toml.toPlainText()
    assert method.command.toPlainText().startswith("unlearn-studio run ")
    assert "accelerate launch --multi_gpu" in method.command.toPlainText()
    method.advanced.setChecked(True)
    screenshot(wizard, "wizard_2_method")

    wizard.next()
    data = wizard.data_page
    qtbot.waitUntil(data.isComplete, timeout=WAIT_MS)
    assert list(data.editors)[:2] == ["forget", "retain"]
    forget = data.editors["forget"]
    assert "«" in forget.batch.toPlainText()  # the trained answer span is marked in the decoded batch
    forget.path.setText(str(tmp_path / "missing.jsonl"))
    qtbot.waitUntil(lambda: not forget.job.pending, timeout=WAIT_MS)
    assert not data.isComplete() and "not found" in forget.status.text()
    forget.path.setText("demo:forget10.jsonl")
    qtbot.waitUntil(data.isComplete, timeout=WAIT_MS)
    screenshot(wizard, "wizard_3_data")

    wizard.next()
    review = wizard.review_page
    qtbot.waitUntil(review.isComplete, timeout=WAIT_MS)
    assert any("fits" in review.checks.item(i).text() for i in range(review.checks.count()))
    review.set_project_path(tmp_path / "graddiff.toml")  # checked again: runs go beside the project file
    qtbot.waitUntil(review.isComplete, timeout=WAIT_MS)
    assert "graddiff.toml" in review.command.text()
    assert any(str(tmp_path / "runs") in review.checks.item(i).text() for i in range(review.checks.count()))
    screenshot(wizard, "wizard_4_review")

    with qtbot.waitSignal(window.run_started, timeout=WAIT_MS) as started:
        wizard.button(QWizard.WizardButton.FinishButton).click()
    session = started.args[0]
    saved = RunConfig.load(tmp_path / "graddiff.toml")
    assert saved.method.name == "grad_diff" and saved.method.params == {"retain_weight": 2.0}
    assert saved.training.max_steps == 6
    frozen_while_training = []
    session.event.connect(lambda e: isinstance(e, StepEvent) and frozen_while_training.append(gc.get_freeze_count()))
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS) as ended:
        pass
    assert ended.args[0].status == "finished"
    # No full garbage collection walks the loaded model while it trains (it would stall the window).
    assert frozen_while_training and min(frozen_while_training) > 0 and gc.get_freeze_count() == 0
    monitor = window.runs.monitor
    # Once the run has ended every plot shows every step: none is left waiting for its turn to redraw.
    assert {key: monitor.curve_points(key) for key in ("loss/total", "loss/forget", "lr", "grad_norm")} == {
        "loss/total": 6, "loss/forget": 6, "lr": 6, "grad_norm": 6}
    assert "Adapter saved" in monitor.log.toPlainText()
    assert window.runs.table.run_ids() == [session.run_id]
    screenshot(window, "main_window_run_finished")


def test_pause_resume_stop_and_save_then_evaluate(qtbot, window, tmp_path, screenshot):
    _project, session = start_short_run(qtbot, window, tmp_path, steps=200, suite="fast")
    monitor = window.runs.monitor
    session.pause()  # checked before the first step: the run holds there
    with wait_for_status(qtbot, session, "paused"):
        pass
    assert monitor.pause_button.text() == "Resume"
    assert window.store.run(session.run_id)["status"] == "paused"
    screenshot(window, "monitor_paused")

    with qtbot.waitSignal(session.event, timeout=WAIT_MS, check_params_cb=lambda e: isinstance(e, StepEvent)):
        monitor.pause_button.click()  # resume
    assert monitor.pause_button.text() == "Pause"
    with wait_for_status(qtbot, session, "paused"):
        monitor.pause_button.click()  # pause again, then stop and save while paused
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS) as ended:
        monitor.stop_button.click()
    result = ended.args[0]
    assert result.status == "stopped" and (result.adapter_dir / "adapter_config.json").is_file()
    qtbot.waitUntil(lambda: monitor.curve_points("loss/total") >= 1, timeout=WAIT_MS)
    screenshot(window, "monitor_stopped")

    view = window.runs.evaluation
    window.runs.details.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.report is not None and view.report.run_id == session.run_id
                    and view.report.status == "stopped", timeout=WAIT_MS)
    assert view.evaluate_button.isVisible() and not view.report.complete  # stopped runs skip "after"
    with qtbot.waitSignal(view.shown, timeout=WAIT_MS):
        view.evaluate_button.click()
    assert view.report.complete, view.heading.text()
    assert view.table.rowCount() >= 5
    labels = [view.table.item(r, 0).text() for r in range(view.table.rowCount())]
    assert "forget: value accuracy" in labels
    verdicts = {view.table.item(r, 5).text() for r in range(view.table.rowCount())}
    assert verdicts <= {"✓ as wanted", "✗ the wrong way", "–"}
    coloured = [view.table.item(r, 0).background().color().name() for r in range(view.table.rowCount())
                if view.table.item(r, 5).text() != "–"]
    assert coloured and set(coloured) <= {"#dff3e3", "#f9dcdc"}
    screenshot(window, "evaluation_before_after")
    view.tabs.setCurrentIndex(1)
    assert view.answer_set.currentText() == "forget" and view.answers.rowCount() > 0
    assert view.answers.item(0, 3).text()  # the unlearned model's answer
    screenshot(window, "evaluation_answers")
    view.tabs.setCurrentIndex(2)
    screenshot(window, "evaluation_frontier")
    assert "(this run)" in "".join(item.toPlainText() for item in view.frontier.getPlotItem().items
                                   if hasattr(item, "toPlainText"))


def test_quitting_during_a_run_cancels_it_and_the_run_resumes_later(qtbot, tmp_path, screenshot):
    store, _ = open_store(str(tmp_path / "store.db"))
    first = MainWindow(store)
    qtbot.addWidget(first)
    first.show()
    project, session = start_short_run(qtbot, first, tmp_path, steps=2000, suite="none", checkpoint_every=2)
    before = project.read_bytes()
    qtbot.waitUntil(lambda: any(p.name.startswith("step-") for p in (tmp_path / "runs").glob("*/checkpoints/*")),
                    timeout=WAIT_MS)
    first.close()  # cancels the run and joins it
    run = store.run(session.run_id)
    assert run["status"] == "cancelled"
    assert project.read_bytes() == before

    second = MainWindow(store)
    qtbot.addWidget(second)
    second.show()
    assert second.open_project(project)
    second.runs.table.select_runs([session.run_id])
    monitor = second.runs.monitor
    assert monitor.resume_button.isVisible() and second.resume_action.isEnabled()
    assert monitor.curve_points("loss/total") >= 2  # the recorded curves of the cancelled run
    last_step = int(max(monitor.curves["loss/total"].getOriginalDataset()[0]))
    assert monitor.status.text() == f"Cancelled at step {last_step}"  # a step number, not "3.0"
    screenshot(second, "monitor_offers_resume")
    with qtbot.waitSignal(second.run_started, timeout=WAIT_MS) as started:
        monitor.resume_button.click()
    resumed = started.args[0]
    with wait_for_status(qtbot, resumed, "resumed"):
        pass
    assert resumed.run_id == session.run_id
    with qtbot.waitSignal(resumed.ended, timeout=WAIT_MS) as ended:
        second.stop_run()
    assert ended.args[0].status == "stopped" and ended.args[0].run_id == session.run_id
    second.close()
    store.close()


def test_a_run_that_cannot_start_reaches_the_error_dialog_and_the_log(qtbot, window, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A."}\n{"question": 3\n', encoding="utf-8")
    start_short_run(qtbot, window, tmp_path, forget=str(bad))
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "errorDialog") is not None, timeout=WAIT_MS)
    dialog = window.findChild(QMessageBox, "errorDialog")
    assert "bad row" in dialog.text() and "What to do" in dialog.informativeText()
    assert "bad row" in window.runs.monitor.log.toPlainText()
    assert not window.session.running and window.new_run_action.isEnabled()
    dialog.close()


def test_runs_table_sorts_and_delete_keeps_files_unless_asked(qtbot, window, tmp_path):
    project, session = start_short_run(qtbot, window, tmp_path, steps=2, suite="none")
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        pass
    second = window.rerun()
    with qtbot.waitSignal(second.ended, timeout=WAIT_MS):
        pass
    table = window.runs.table
    assert set(table.run_ids()) == {session.run_id, second.run_id}
    table.sortByColumn(table.model_.columnCount() - 2, Qt.SortOrder.AscendingOrder)
    assert table.run_ids() == [session.run_id, second.run_id]  # by start time, oldest first

    folders = {run_id: Path(window.store.run(run_id)["output_dir"]) for run_id in table.run_ids()}
    table.select_runs([session.run_id])
    assert window.delete_run(confirm=False)
    assert folders[session.run_id].is_dir()  # files kept
    table.select_runs([second.run_id])
    assert window.delete_run(confirm=False, delete_files=True)
    assert not folders[second.run_id].exists()
    assert window.store.runs() == [] and table.run_ids() == []
    assert json.loads(json.dumps(window.store.projects()))[0]["path"] == str(project)
