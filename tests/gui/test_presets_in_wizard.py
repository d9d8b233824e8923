"""Presets in the wizard (issue 17, item 3): a preset brings its whole recipe, data roles and
templates included (after asking, when the person chose data of their own); the combo says which
preset the values are, or Custom; a template that misfits is a yellow warning with a one-click fix."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtWidgets import QPushButton

from unlearn_studio.core.paths import demo_data_dir, demo_project, projects_dir
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.jobs import Jobs
from unlearn_studio.gui.wizard import NewRunWizard
from unlearn_studio.gui.wizard.method_page import MethodPage

WAIT_MS = 300_000
WIZARD_ON_SCREEN = lambda w, h: (min(980, w - 60), min(720, h - 60))  # noqa: E731


@pytest.fixture
def open_wizard(qtbot):
    jobs = Jobs()
    opened = []

    def start(project, *, page: str = "method"):
        wizard = NewRunWizard(jobs, RunConfig.load(project), project)
        qtbot.addWidget(wizard)
        wizard.show()
        opened.append(wizard)
        qtbot.waitUntil(wizard.model_page.isComplete, timeout=WAIT_MS)
        wizard.next()
        qtbot.waitUntil(lambda: wizard.method_page.method_cls is not None, timeout=WAIT_MS)
        return wizard

    yield start
    for wizard in opened:
        wizard.close()
    jobs.wait()


def test_a_methods_demo_preset_brings_its_data_and_templates(qtbot, open_wizard, screenshots):
    """The issue's case: ELM's demo settings on the persons project kept the persons QA data."""
    wizard = open_wizard(demo_project())
    page = wizard.method_page
    page.select_method("elm")  # the demo project's data shipped with the app: replaced without a question
    elm = RunConfig.load(projects_dir() / "elm_demo.toml")
    assert wizard.draft.data == elm.data and wizard.draft.data["forget"].template == "raw"
    assert page.preset.currentText() == "Demo settings" and "data roles and templates" in page.preset_note.text()
    screenshots(wizard, "wizard_preset_elm", fits=WIZARD_ON_SCREEN)
    wizard.next()
    data = wizard.data_page
    qtbot.waitUntil(data.isComplete, timeout=WAIT_MS)
    assert data.editors["forget"].template.currentText() == "raw" and not data.editors["forget"].fix.isVisibleTo(data)


def test_a_person_is_asked_before_their_own_data_is_replaced(qtbot, open_wizard, tmp_path, monkeypatch):
    own = tmp_path / "my_forget.jsonl"
    shutil.copy(demo_data_dir() / "forget10.jsonl", own)
    config = RunConfig.load(demo_project())
    config.data["forget"].path = str(own)
    project = tmp_path / "mine.toml"
    config.save(project)
    asked = []
    monkeypatch.setattr(MethodPage, "_use_preset_data", lambda self, source: asked.append(source) or False)
    wizard = open_wizard(project)
    wizard.method_page.select_method("elm")
    assert asked == ["elm_demo.toml"]
    assert wizard.draft.data["forget"].path == str(own)  # kept, as answered
    assert wizard.draft.method.params["concept"] == RunConfig.load(projects_dir() / "elm_demo.toml").method.params["concept"]
    monkeypatch.setattr(MethodPage, "_use_preset_data", lambda self, source: asked.append(source) or True)
    wizard.method_page.apply_preset("demo")
    assert wizard.draft.data == RunConfig.load(projects_dir() / "elm_demo.toml").data


def test_the_preset_combo_says_which_preset_the_values_are(qtbot, open_wizard):
    wizard = open_wizard(demo_project())
    page = wizard.method_page
    assert page.preset.currentText() == "Demo settings"  # the demo project is RMU's demo settings
    page.apply_preset("paper")
    assert page.preset.currentText() == "Paper's recipe" and "WMDP" in page.preset_note.text()
    assert page.field("optimizer.lr").widget.text() == "5e-5"  # WMDP's, not the demo's 5e-3
    page.field("optimizer.lr").widget.setText("1e-4")
    assert page.preset.currentText() == "Custom"
    page.field("optimizer.lr").widget.setText("5e-5")
    assert page.preset.currentText() == "Paper's recipe"


def test_a_misfit_template_is_a_yellow_warning_with_a_one_click_fix(qtbot, open_wizard, tmp_path, screenshots):
    config = RunConfig.load(demo_project())
    config.data["forget"].template = "auto"  # the demo tokenizer's chat template; the model learned qa
    project = tmp_path / "auto.toml"
    config.save(project)
    wizard = open_wizard(project)
    wizard.next()
    data = wizard.data_page
    qtbot.waitUntil(data.isComplete, timeout=WAIT_MS)
    forget = data.editors["forget"]
    assert forget.status.text().startswith("⚠") and "learned" in forget.status.text()
    assert "#8a6d00" in forget.status.styleSheet() and forget.fix.text() == "Use the qa template"
    assert "--template" not in forget.status.text()  # the app's words, not a command-line flag
    screenshots(wizard, "wizard_3_data_template_warning", fits=WIZARD_ON_SCREEN)

    wizard.next()
    review = wizard.review_page
    qtbot.waitUntil(lambda: review.result is not None, timeout=WAIT_MS)
    advice = next((w for i in range(review.checks.count()) if (w := review.checks.itemWidget(review.checks.item(i)))
                   is not None and w.objectName() == "templateAdvice_forget"), None)
    assert advice is not None and review.isComplete()  # a warning: the run may still start
    screenshots(wizard, "wizard_4_review_template_warning", fits=WIZARD_ON_SCREEN)
    with qtbot.waitSignal(review.checks_ready, timeout=WAIT_MS):
        advice.findChild(QPushButton, "templateFixButton").click()
    assert wizard.draft.data["forget"].template == "qa" and forget.template.currentText() == "qa"
    rows = [review.checks.itemWidget(review.checks.item(i)) for i in range(review.checks.count())]
    assert review.advice == [] and not any(row is not None and row.objectName() == "templateAdvice_forget"
                                           for row in rows)
