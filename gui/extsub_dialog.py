"""The "combine adapters" dialog: Ext-Sub and plain LoRA arithmetic on two adapter folders.

The work is core/adapters.py's ``combine_adapters``; it runs in the background, and its result
(a new PEFT adapter folder) or the problem it found is shown here.
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

from .error_dialog import show_error
from .status_line import StatusLine
from .worker import JobRunner

# What each operation does, in the order the menu lists them (core/adapters.py OPERATIONS).
OPERATIONS = {
    "ext-sub": "Ext-Sub (arXiv 2308.08090): the expert minus only the deficiency part of the anti-expert; "
               "what the two share (general skill) is kept, row by row.",
    "subtraction": "expert − α × anti-expert: removes everything the anti-expert learned, shared skill included.",
    "addition": "expert + α × anti-expert.",
    "negation": "−α × expert: turns the expert's change around. The anti-expert is not used.",
}
INTRO = ("Combine two LoRA adapters trained on the same base model: an expert (trained on data that shows "
         "the wanted behaviour) and an anti-expert (trained on data that shows the deficiency, e.g. false "
         "or toxic answers). The result is a new adapter folder that PeftModel.from_pretrained loads.")


class ExtSubDialog(QDialog):
    combined = Signal(object)  # the Path of the new adapter folder

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.result_dir: Path | None = None
        self._busy = False
        self.setWindowTitle("Combine adapters (Ext-Sub)")
        self.setMinimumWidth(640)

        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.expert = self._folder_edit("expertEdit", "the expert adapter folder (holds adapter_config.json)")
        self.anti_expert = self._folder_edit("antiExpertEdit", "the anti-expert adapter folder")
        self.output = self._folder_edit("outputEdit", "a new folder for the combined adapter")
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
        form.addRow("Expert adapter:", self._with_chooser(self.expert, "Choose the expert adapter folder"))
        form.addRow("Anti-expert adapter:", self._with_chooser(self.anti_expert,
                                                               "Choose the anti-expert adapter folder"))
        operation_cell = QWidget()
        operation_layout = QVBoxLayout(operation_cell)
        operation_layout.setContentsMargins(0, 0, 0, 0)
        operation_layout.setSpacing(2)
        operation_layout.addWidget(self.operation)
        operation_layout.addWidget(self.operation_help)
        form.addRow("Operation:", operation_cell)
        form.addRow("Alpha (λ):", self.alpha)
        form.addRow("Output folder:", self._with_chooser(self.output, "Choose the output folder"))

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

    def _with_chooser(self, edit: QLineEdit, title: str) -> QWidget:
        button = QPushButton("Choose…")
        button.clicked.connect(lambda: self._choose(edit, title))
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
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
        self.anti_expert.setPlaceholderText("the anti-expert adapter folder" if uses_anti
                                            else "not used by negation")

    # ---- combining -------------------------------------------------------------------------------

    def start_combine(self) -> None:
        if self._busy:
            return
        op = self.operation.currentData()
        expert = self.expert.text().strip()
        anti = self.anti_expert.text().strip() if op != "negation" else ""
        out = self.output.text().strip()
        missing = [what for what, value in (("expert adapter folder", expert),
                                            ("anti-expert adapter folder", anti if op != "negation" else "-"),
                                            ("output folder", out)) if not value]
        if missing:
            self.status.refuse(UserError(f"No {missing[0]} is given", f"Choose the {missing[0]}."))
            return
        # Imported here: the adapter arithmetic (and torch) loads only when it is used.
        from unlearn_studio.core.model.adapters import combine_adapters

        alpha = self.alpha.value()
        self._set_busy(True)
        self.status.say(f"Combining ({op}, α = {alpha:g})…")
        self.jobs.start(lambda: combine_adapters(Path(expert).expanduser(),
                                                 Path(anti).expanduser() if anti else None,
                                                 Path(out).expanduser(), op=op, alpha=alpha),
                        self._combined, self._failed)

    def _combined(self, folder: Path) -> None:
        self._set_busy(False)
        self.result_dir = Path(folder)
        self.status.say(f"Wrote the combined adapter to {folder}. Load it like any adapter: "
                  f"PeftModel.from_pretrained(base_model, \"{folder}\").")
        self.combined.emit(self.result_dir)

    def _failed(self, error: Exception, trace: str) -> None:
        self._set_busy(False)
        if isinstance(error, UserError):
            self.status.say(f"{error.problem}. {error.fix}", problem=True)
        else:
            self.status.say(f"The combination failed: {error}", problem=True)
        show_error(self, error, trace)


    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.combine_button.setEnabled(not busy)
        self.close_button.setEnabled(not busy)


    def reject(self) -> None:
        if self._busy:
            return  # the new adapter folder is being written
        super().reject()
