"""The new-run wizard on the demo with GradDiff, page by page, up to a run whose curves arrive live."""

from __future__ import annotations

import gc

import pytest
from PySide6.QtWidgets import QWizard

from unlearn_studio.core.events import StepEvent
from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig

WAIT_MS = 300_000
WIZARD_ON_SCREEN = lambda w, h: (min(980, w - 60), min(720, h - 60))  # noqa: E731  what fit_to_screen gives


@pytest.mark.slow
def test_wizard_on_the_demo_with_graddiff_starts_a_run_whose_curves_arrive(qtbot, window, tmp_path, screenshots):
    assert window.open_project(demo_project())
    wizard = window.manager.new_run()
    model = wizard.model_page
    qtbot.waitUntil(model.isComplete, timeout=WAIT_MS)
    assert "LlamaForCausalLM" in model.labels["Architecture"].text()
    assert "an estimate" in model.labels["Memory estimate"].text()
    screenshots(wizard, "wizard_1_model", fits=WIZARD_ON_SCREEN)

    wizard.next()
    method = wizard.method_page
    qtbot.waitUntil(lambda: method.method_cls is not None, timeout=WAIT_MS)
    titles = [method.list.item(i).text().split("\n")[0] for i in range(method.list.count())]
    assert {"GradDiff", "NPO", "RMU"} <= set(titles)
    method.select_method("grad_diff")
    assert method.method_cls.name == "grad_diff" and "2203.12817" in method.about.text()
    assert wizard.draft.optimizer.lr == RunConfig.load(demo_project().parent / "grad_diff.toml").optimizer.lr
    assert method.preset.currentText() == "Demo settings"
    method.field("training.max_steps").widget.setText("6")
    assert method.preset.currentText() == "Custom"  # the values are no preset's any more
    method.field("evaluation.suite").widget.setCurrentText("none")
    retain = method.field("param:retain_weight")
    assert retain.label.text() == "Weight of keeping (retain):"  # plain words; the file's name is in the tooltip
    assert "method.params.retain_weight" in retain.widget.toolTip() and "Default 1" in retain.widget.toolTip()
    retain.widget.setText("-1")  # below the declared minimum
    assert not method.isComplete() and "retain_weight" in method.problems()[0]
    retain.widget.setText("2")
    assert method.isComplete()
    assert "retain_weight = 2.0" in method.toml.toPlainText() and "max_steps = 6" in method.toml.toPlainText()
    assert method.command.toPlainText().startswith("unlearn-studio run ")
    assert "accelerate launch --multi_gpu" in method.command.toPlainText()
    method.advanced.setChecked(True)
    screenshots(wizard, "wizard_2_method", fits=WIZARD_ON_SCREEN)

    wizard.next()
    data = wizard.data_page
    qtbot.waitUntil(data.isComplete, timeout=WAIT_MS)
    assert list(data.editors)[:2] == ["forget", "retain"]
    forget = data.editors["forget"]
    assert "«" in forget.batch.toPlainText()  # the trained answer span is marked in the decoded batch
    forget.path.setText(str(tmp_path / "missing.jsonl"))
    qtbot.waitUntil(lambda: not forget.job.pending, timeout=WAIT_MS)
    assert not data.isComplete() and forget.status.text().startswith("✗") and "missing.jsonl" in forget.status.text()
    forget.path.setText("demo:forget10.jsonl")
    qtbot.waitUntil(data.isComplete, timeout=WAIT_MS)
    screenshots(wizard, "wizard_3_data", fits=WIZARD_ON_SCREEN)

    wizard.next()
    review = wizard.review_page
    qtbot.waitUntil(review.isComplete, timeout=WAIT_MS)
    assert any("fits" in review.checks.item(i).text() for i in range(review.checks.count()))
    review.set_project_path(tmp_path / "graddiff.toml")  # checked again: runs go beside the project file
    qtbot.waitUntil(review.isComplete, timeout=WAIT_MS)
    assert "graddiff.toml" in review.command.text()
    assert any(str(tmp_path / "runs") in review.checks.item(i).text() for i in range(review.checks.count()))
    screenshots(wizard, "wizard_4_review", fits=WIZARD_ON_SCREEN)

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
    screenshots(window, "main_window_run_finished")
