"""The "combine adapters" dialog: Ext-Sub and plain LoRA arithmetic on two adapters of the open
project's base model (a run's adapter, or any adapter folder).

The work is core's ``combine_as_run``: the result is recorded as a run of the project, so it is
listed with the runs and Compare, Evaluate and Export work on it. The same adapter as expert and
anti-expert is refused before anything runs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.jobs import JobContext, Jobs
from unlearn_studio.gui.status_line import StatusLine

# What each operation does, in the order the menu lists them (core/model/adapters.py OPERATIONS).
OPERATIONS = {
    "ext-sub": "Ext-Sub (arXiv 2308.08090): the expert minus only the deficiency part of the anti-expert; "
               "what the two share (general skill) is kept, row by row.",
    "subtraction": "expert − α × anti-expert: removes everything the anti-expert learned, shared skill included.",
    "addition": "expert + α × anti-expert.",
    "negation": "−α × expert: turns the expert's change around. The anti-expert is not used.",
}
INTRO = ("Combine two LoRA adapters trained on this project's base model: an expert (trained on data that "
         "shows the wanted behaviour) and an anti-expert (trained on data that shows the deficiency, e.g. false "
         "or toxic answers). The result is a new adapter, listed with the project's runs, where you can "
         "compare, evaluate and export it.")
A_FOLDER = "(a folder)"


def _combine(store, project_id: int, config: RunConfig, expert: Path, anti: Path | None, out: Path, op: str,
             alpha: float, _ctx: JobContext) -> str:
    # The adapter arithmetic loads torch: imported on the worker.
    from unlearn_studio.core.results.combined_run import combine_as_run

    return combine_as_run(store, project_id, config, expert, anti, out, op=op, alpha=alpha)


class ExtSubDialog(QDialog):
    combined = Signal(str)  # the id of the run that records the new adapter

    def __init__(self, jobs: Jobs, store, project_id: int, config: RunConfig, *, adapters: dict[str, Path] | None = None,
                 suggested_output: Path | None = None, parent: QWidget | None = None):
        """``adapters``: the project's runs that have an adapter, by label, offered as choices."""
        super().__init__(parent)
        self.jobs, self.store, self.project_id, self.config = jobs, store, project_id, config
        self.adapters = adapters or {}
        self.run_id = ""
        self.result_dir: Path | None = None
        self._busy = False
        self.setWindowTitle("Combine adapters (Ext-Sub)")
        self.setMinimumWidth(620)

        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.expert = self._folder_edit("expertEdit", "the expert adapter folder (holds adapter_config.json)")
        self.anti_expert = self._folder_edit("antiExpertEdit", "the anti-expert adapter folder")
        self.output = self._folder_edit("outputEdit", "a new folder for the combined adapter")
        if suggested_output is not None:
            self.output.setText(str(suggested_output))
        self.operation = QComboBox()
        self.operation.setObjectName("operationPicker")
        for name in OPERATIONS:
            self.operation.addItem(name, name)
        self.operation_help = QLabel()
        self.operation_help.setObjectName("operationHelp")
        self.operation_help.setWordWrap(True)
        self.operation_help.setStyleSheet("color: #555")
        self.operation.currentIndexChanged.connect(self._operation_changed)
        self.alpha = QDoubleSpinBox()
        self.alpha.setObjectName("alphaSpin")
        self.alpha.setRange(0.0, 10.0)
        self.alpha.setDecimals(2)
        self.alpha.setSingleStep(0.1)
        self.alpha.setValue(1.0)
        self.alpha.setToolTip("λ: how strongly the anti-expert (or, for negation, the expert) is applied; "
                              "1 in the paper")

        form = QFormLayout()
        form.addRow("Expert adapter:", self._with_choices(self.expert, "Choose the expert adapter folder"))
        form.addRow("Anti-expert adapter:", self._with_choices(self.anti_expert, "Choose the anti-expert adapter folder"))
        operation_cell = QWidget()
        operation_layout = QVBoxLayout(operation_cell)
        operation_layout.setContentsMargins(0, 0, 0, 0)
        operation_layout.setSpacing(2)
        operation_layout.addWidget(self.operation)
        operation_layout.addWidget(self.operation_help)
        form.addRow("Operation:", operation_cell)
        form.addRow("Alpha (λ):", self.alpha)
        form.addRow("Output folder:", self._with_choices(self.output, "Choose the output folder", runs=False))

        self.status = StatusLine("extsubStatus")
        self.status.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.status.setMinimumHeight(self.status.fontMetrics().lineSpacing() * 3)
        self.buttons = QDialogButtonBox()
        self.combine_button = self.buttons.addButton("Combine", QDialogButtonBox.ButtonRole.AcceptRole)
        self.combine_button.setObjectName("combineButton")
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.combine_button.clicked.connect(self.start_combine)
        self.close_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.status, 1)
        layout.addWidget(self.buttons)
        self._operation_changed()

    def _folder_edit(self, name: str, placeholder: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        edit.textChanged.connect(edit.setToolTip)  # a long path shows whole on hover
        return edit

    def _with_choices(self, edit: QLineEdit, title: str, runs: bool = True) -> QWidget:
        """The folder field, a list of the project's runs with an adapter, and a folder chooser."""
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        if runs and self.adapters:
            picker = QComboBox()
            picker.setObjectName(f"{edit.objectName()}Runs")
            picker.addItem(A_FOLDER)
            picker.addItems(list(self.adapters))
            picker.setToolTip("Use the adapter of one of this project's runs")
            picker.textActivated.connect(lambda label: label in self.adapters and edit.setText(str(self.adapters[label])))
            layout.addWidget(picker)
        layout.addWidget(edit, 1)
        button = QPushButton("Choose…")
        button.clicked.connect(lambda: self._choose(edit, title))
        layout.addWidget(button)
        return row

    def _choose(self, edit: QLineEdit, title: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, title, edit.text().strip() or str(Path.home()))
        if folder:
            edit.setText(folder)

    def _operation_changed(self) -> None:
        op = self.operation.currentData()
        self.operation_help.setText(OPERATIONS[op])
        uses_anti = op != "negation"
        self.anti_expert.setEnabled(uses_anti)
        self.anti_expert.setPlaceholderText("the anti-expert adapter folder" if uses_anti else "not used by negation")

    # ---- combining -------------------------------------------------------------------------------

    def start_combine(self) -> None:
        from unlearn_studio.core.results.combined_run import check_pair  # its module loads torch (loaded by now)

        if self._busy:
            return
        op = self.operation.currentData()
        expert = self.expert.text().strip()
        anti = self.anti_expert.text().strip() if op != "negation" else ""
        out = self.output.text().strip()
        missing = [what for what, value in (("expert adapter folder", expert),
                                            ("anti-expert adapter folder", anti if op != "negation" else "-"),
                                            ("output folder", out)) if not value]
        try:
            if missing:
                raise UserError(f"No {missing[0]} is given", f"Choose the {missing[0]}.")
            check_pair(expert, anti or None)
        except UserError as error:
            self.status.refuse(error)
            return
        alpha = self.alpha.value()
        self._set_busy(True)
        self.status.say(f"Combining ({op}, α = {alpha:g})…")
        store, project_id, config = self.store, self.project_id, self.config
        expert_dir, anti_dir, out_dir = Path(expert).expanduser(), Path(anti).expanduser() if anti else None, \
            Path(out).expanduser()
        self.jobs.start(lambda ctx: _combine(store, project_id, config, expert_dir, anti_dir, out_dir, op, alpha, ctx),
                        self._combined, self._failed, name=f"Combining two adapters ({op})")

    def _combined(self, run_id: str) -> None:
        from unlearn_studio.core.results.run_info import run_info  # reads checkpoints (torch): loaded by now

        self._set_busy(False)
        self.run_id = run_id
        self.result_dir = run_info(self.store, run_id).adapter_dir
        self.status.say(f"Wrote the combined adapter to {self.result_dir}. It is listed with the project's runs "
                        f"(run {run_id[:8]}), where Compare, Evaluate and Export work on it.")
        self.combined.emit(run_id)

    def _failed(self, error: Exception, trace: str) -> None:
        """The error dialog and the log have it (the job's default); the status line says it here."""
        self._set_busy(False)
        if isinstance(error, UserError):
            self.status.say(f"{error.problem}. {error.fix}", problem=True)
        else:
            self.status.say(f"The combination failed: {error}", problem=True)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.combine_button.setEnabled(not busy)
        self.close_button.setEnabled(not busy)

    def reject(self) -> None:
        if self._busy:
            return  # the new adapter folder is being written
        super().reject()
