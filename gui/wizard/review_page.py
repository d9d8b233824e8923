"""Wizard page 4, review: what the run will do, the pre-flight checks (memory fit, free disk,
options that do not go together), where the project file is saved, and Start."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from unlearn_studio.gui.jobs import LOG, JobSlot
from unlearn_studio.gui.numbers import setting
from unlearn_studio.gui.projects_panel import distinct_name
from unlearn_studio.gui.words import hyperparameter_label

MARKS = {"ok": ("✓", "#1b7f3b"), "warning": ("⚠", "#8a6d00"), "error": ("✗", "#b3261e")}


def _preflight(config):
    # The checks read the model and the methods (torch): on a worker, when the page asks.
    from unlearn_studio.core.project.template_check import check_templates
    from unlearn_studio.core.run.preflight import preflight

    return preflight(config), check_templates(config)


class ReviewPage(QWizardPage):
    checks_ready = Signal()

    def __init__(self, wizard):
        super().__init__()
        self.owner = wizard
        self.setTitle("Review and start")
        self.setSubTitle("Check what will run. The project file is saved first, so the same run can be "
                         "repeated from the command line.")
        self.result = None
        self.advice = []

        self.summary = QLabel()
        self.summary.setObjectName("reviewSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.checks = QListWidget()
        self.checks.setObjectName("preflightChecks")
        self.checks.setWordWrap(True)
        self.name = QLineEdit()
        self.name.setObjectName("projectName")
        self.name.textEdited.connect(self._name_edited)
        self.name_note = QLabel()
        self.name_note.setObjectName("nameNote")
        self.name_note.setWordWrap(True)
        self.name_note.setStyleSheet(f"color: {MARKS['warning'][1]}")
        self.name_note.hide()
        self.project_path = QLineEdit()
        self.project_path.setObjectName("projectPath")
        self.project_path.textChanged.connect(self._path_changed)
        self.project_path.textEdited.connect(lambda _: setattr(self, "_path_chosen", True))
        self._path_chosen = False
        browse = QPushButton("Save as…")
        browse.clicked.connect(self._browse)
        self.command = QLabel()
        self.command.setObjectName("reviewCommand")
        self.command.setWordWrap(True)
        self.command.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        copy_command = QPushButton("Copy command")
        copy_command.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.owner.headless_command()))

        summary_box = QGroupBox("The run")
        QVBoxLayout(summary_box).addWidget(self.summary)
        checks_box = QGroupBox("Pre-flight checks")
        QVBoxLayout(checks_box).addWidget(self.checks)
        file_box = QGroupBox("Project file")
        file_layout = QVBoxLayout(file_box)
        name_row = QHBoxLayout()
        name_row.addWidget(QLabel("Name:"))
        name_row.addWidget(self.name, 1)
        file_layout.addLayout(name_row)
        file_layout.addWidget(self.name_note)
        path_row = QHBoxLayout()
        path_row.addWidget(QLabel("Saved as:"))
        path_row.addWidget(self.project_path, 1)
        path_row.addWidget(browse)
        file_layout.addLayout(path_row)
        command_row = QHBoxLayout()
        command_row.addWidget(self.command, 1)
        command_row.addWidget(copy_command)
        file_layout.addLayout(command_row)

        layout = QVBoxLayout(self)
        layout.addWidget(summary_box)
        layout.addWidget(checks_box, 1)
        layout.addWidget(file_box)
        self.job = JobSlot(wizard.jobs, parent=self)  # the checks of the newest settings win

    def initializePage(self) -> None:
        d, base = self.owner.draft, self.owner.base_config
        if d.name == base.name and d.method.name != base.method.name:
            title = self.owner.method_class().title
            d.name = distinct_name(f"{base.name.split(':')[0]}: {title} run", self.owner.taken_names)
        self.name.setText(d.name)
        self._check_name()
        self._suggest_path()
        self.summary.setText(self._summary_html())
        self.checks.clear()
        self.checks.addItem("Checking memory, disk and options…")
        self.result = None
        self._check(now=True)

    def _check(self, now: bool = False) -> None:
        """Pre-flight on the config as it will be saved (its output folder is beside the project file)."""
        self.result = None
        self.completeChanged.emit()
        config = self.owner.result_config()
        self.job.start(lambda ctx: _preflight(config), self._show_checks, self._checks_failed, now=now,
                       name="Pre-flight checks", errors=LOG)

    def _summary_html(self) -> str:
        d = self.owner.draft
        cls = self.owner.method_class()
        t = d.training
        length = f"{t.max_steps} steps" if t.max_steps is not None else f"{t.epochs:g} epochs"
        params = ", ".join(f"{hyperparameter_label(d.method.name, k).lower()} {setting(v)}"
                           for k, v in d.method.params.items()) or "none"
        data = "<br>".join(f"&nbsp;&nbsp;{html.escape(role)}: {html.escape(s.path)}"
                           + (f" (template {html.escape(s.template)})" if s.template != "auto" else "")
                           for role, s in d.data.items())
        model = "the built-in demo model" if d.model.is_demo else html.escape(d.model.path)
        rows = [
            ("Name", html.escape(d.name)),
            ("Model", f"{model} · dtype {d.model.dtype} · device {d.model.device}"),
            ("Method", f"{html.escape(cls.title)} — {html.escape(cls.summary)}<br>parameters: {html.escape(params)}"),
            ("Data", data or "none"),
            ("LoRA", f"r = {d.lora.r}, alpha = {setting(d.lora.alpha)}, targets {', '.join(d.lora.roles)}"
                     + (f", layers {html.escape(d.lora.layers)}" if d.lora.layers else ", every layer")),
            ("Training", (f"{length}, batch {t.batch_size}×{t.grad_accum}, max length {t.max_length}, "
                         f"{d.optimizer.name} lr {setting(d.optimizer.lr)}, {d.schedule.name} schedule, seed {t.seed}")),
            ("Evaluation", f"{d.evaluation.suite} suite, before and after" if d.evaluation.suite != "none"
                           else "none (evaluate later from the Evaluation tab)"),
        ]
        return "<table cellspacing='3'>" + "".join(
            f"<tr><td align='right' valign='top'><b>{k}:</b></td><td>{v}</td></tr>" for k, v in rows) + "</table>"

    def _show_checks(self, found) -> None:
        result, self.advice = found
        self.result = result
        self.checks.clear()
        for check in result.checks:
            mark, colour = MARKS[check.level]
            item = QListWidgetItem(f"{mark} {check.title}" + (f"\n    {check.detail}" if check.detail else ""))
            item.setForeground(QColor(colour))
            self.checks.addItem(item)
        for advice in self.advice:
            self._add_advice(advice)
        if not result.ok:
            item = QListWidgetItem("Fix the problems marked ✗ (go Back to change the settings) to start the run.")
            item.setForeground(QColor(MARKS["error"][1]))
            self.checks.addItem(item)
        self.completeChanged.emit()
        self.checks_ready.emit()

    def _checks_failed(self, error: Exception, trace: str) -> None:
        from unlearn_studio.core.run.preflight import ERROR, Check, Preflight  # torch behind it; loaded by the checks

        self._show_checks((Preflight([Check(ERROR, "The checks could not run", str(error))]), []))

    def _add_advice(self, advice) -> None:
        """A template that misfits: a warning in the list, with the template that fixes it a click away."""
        row = QWidget()
        row.setObjectName(f"templateAdvice_{advice.role}")
        layout = QHBoxLayout(row)
        layout.setContentsMargins(4, 2, 4, 2)
        text = QLabel(f"{MARKS['warning'][0]} {advice.title}\n    {advice.detail}")
        text.setWordWrap(True)
        text.setStyleSheet(f"color: {MARKS['warning'][1]}")
        fix = QPushButton(f"Use the {advice.template} template")
        fix.setObjectName("templateFixButton")
        fix.clicked.connect(lambda: self.fix_template(advice.role, advice.template))
        layout.addWidget(text, 1)
        layout.addWidget(fix, 0, Qt.AlignmentFlag.AlignTop)
        item = QListWidgetItem()
        self.checks.addItem(item)
        self.checks.setItemWidget(item, row)
        item.setSizeHint(row.sizeHint())

    def fix_template(self, role: str, template: str) -> None:
        """The one-click fix: the role's template becomes ``template`` (the data page shows it), checked again."""
        self.owner.data_page.set_template(role, template)
        self.summary.setText(self._summary_html())
        self._check(now=True)

    def _suggest_path(self) -> None:
        if not self._path_chosen:
            self.project_path.setText(str(self.owner.suggest_path()))

    def _name_edited(self, text: str) -> None:
        if text.strip():
            self.owner.draft.name = text.strip()
            self.summary.setText(self._summary_html())
            self._suggest_path()
        self._check_name()
        self.completeChanged.emit()

    def _check_name(self) -> None:
        """Two projects of one name cannot be told apart in the list: say so (it does not stop the run)."""
        name = self.name.text().strip()
        taken = name in self.owner.taken_names
        self.name_note.setText(f"⚠ Another project is called “{name}”; a distinct name, such as "
                               f"“{distinct_name(name, self.owner.taken_names)}”, tells the two apart in the list."
                               if taken else "")
        self.name_note.setVisible(taken)

    def set_project_path(self, path) -> None:
        """Save the project at ``path`` (as if chosen with Save as…)."""
        self._path_chosen = True
        self.project_path.setText(str(path))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the project as", self.project_path.text(),
                                              "Project files (*.toml)")
        if path:
            self.set_project_path(path if path.endswith(".toml") else path + ".toml")

    def _path_changed(self, text: str) -> None:
        if text.strip():
            self.owner.project_path = Path(text.strip()).expanduser()
            if self.isVisible() or self.result is not None:
                self._check()
        self.command.setText(f"Headless: {self.owner.headless_command()}")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return (self.result is not None and self.result.ok and bool(self.project_path.text().strip())
                and bool(self.name.text().strip()))

    def initialize_buttons(self, wizard: QWizard) -> None:
        wizard.setButtonText(QWizard.WizardButton.FinishButton, "Add to the queue" if wizard.busy else "Start run")
