"""Wizard page 1, the model: the built-in demo, a local folder or a hub id; dtype and device; its
architecture, parameters, LoRA targets and an estimate of the memory the run needs."""

from __future__ import annotations

import copy

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWizardPage,
)

from unlearn_studio.core.project.config import DEMO_MODEL
from unlearn_studio.gui.jobs import LOG, JobSlot
from unlearn_studio.gui.numbers import count
from unlearn_studio.gui.wizard.fields import DEBOUNCE_MS

DEMO, FOLDER, HUB = 0, 1, 2


def _describe(config):
    # The model's facts come through transformers (and torch): read on a worker when the page asks.
    from unlearn_studio.core.model.loading import describe_model_folder
    from unlearn_studio.core.run.memory_estimate import estimate_memory

    m = config.model
    facts = describe_model_folder(config.resolve_model_path(), dtype=m.dtype, device=m.device,
                                  trust_remote_code=m.trust_remote_code, allow_network=m.allow_network)
    return facts, estimate_memory(config)


def _value_label() -> QLabel:
    label = QLabel("–")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ModelPage(QWizardPage):
    facts_ready = Signal()  # the facts (or the problem) for the current choice are shown

    def __init__(self, wizard):
        super().__init__()
        self.owner = wizard
        self.setTitle("Model")
        self.setSubTitle("The model to unlearn from. Its weights are read only when the run starts; "
                         "here only its configuration is read.")
        self.facts = None
        self.problem = ""

        self.source = QButtonGroup(self)
        self.demo_radio = QRadioButton("The built-in demo model (a small Llama-style model that knows the demo world)")
        self.folder_radio = QRadioButton("A model folder on this computer")
        self.hub_radio = QRadioButton("A Hugging Face Hub id (downloads when the network allows)")
        for number, radio in enumerate((self.demo_radio, self.folder_radio, self.hub_radio)):
            self.source.addButton(radio, number)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("folder with config.json, weights and tokenizer")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.hub_id = QLineEdit()
        self.hub_id.setPlaceholderText("e.g. Qwen/Qwen2.5-0.5B-Instruct")
        self.dtype = QComboBox()
        self.dtype.addItems(["auto", "fp32", "bf16", "fp16"])
        self.dtype.setToolTip("auto: bf16 on a GPU that supports it, else fp32")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setToolTip("auto: a CUDA GPU, then Apple MPS, then the CPU")
        self.trust = QCheckBox("Trust remote code (runs Python shipped with the model; only for models you trust)")

        choice = QGroupBox("Which model")
        choice_layout = QVBoxLayout(choice)
        choice_layout.addWidget(self.demo_radio)
        choice_layout.addWidget(self.folder_radio)
        folder_row = QHBoxLayout()
        folder_row.setContentsMargins(24, 0, 0, 0)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        choice_layout.addLayout(folder_row)
        choice_layout.addWidget(self.hub_radio)
        hub_row = QHBoxLayout()
        hub_row.setContentsMargins(24, 0, 0, 0)
        hub_row.addWidget(self.hub_id, 1)
        choice_layout.addLayout(hub_row)
        options = QHBoxLayout()
        options.addWidget(QLabel("Weights dtype:"))
        options.addWidget(self.dtype)
        options.addSpacing(16)
        options.addWidget(QLabel("Device:"))
        options.addWidget(self.device)
        options.addStretch(1)
        choice_layout.addLayout(options)
        choice_layout.addWidget(self.trust)

        self.status = QLabel()
        self.status.setObjectName("modelStatus")
        self.status.setWordWrap(True)
        facts_box = QGroupBox("What the model is")
        self.form = QFormLayout(facts_box)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.labels = {name: _value_label() for name in
                       ("Architecture", "Parameters", "Layers", "Hidden size", "Vocabulary", "LoRA targets",
                        "Memory estimate")}
        for name, label in self.labels.items():
            self.form.addRow(f"{name}:", label)

        layout = QVBoxLayout(self)
        layout.addWidget(choice)
        layout.addWidget(self.status)
        layout.addWidget(facts_box, 1)

        self.job = JobSlot(wizard.jobs, debounce_ms=DEBOUNCE_MS, parent=self)  # the newest choice's facts win
        self.source.idToggled.connect(lambda *_: self._changed())
        for widget in (self.folder, self.hub_id):
            widget.textChanged.connect(self._changed)
        for combo in (self.dtype, self.device):
            combo.currentTextChanged.connect(self._changed)
        self.trust.toggled.connect(self._changed)
        self._loading = False

    def initializePage(self) -> None:
        model = self.owner.draft.model
        self._loading = True
        if model.is_demo:
            self.demo_radio.setChecked(True)
        elif model.allow_network and not self.owner.draft.resolve_path(model.path).exists():
            self.hub_radio.setChecked(True)
            self.hub_id.setText(model.path)
        else:
            self.folder_radio.setChecked(True)
            self.folder.setText(model.path)
        self.dtype.setCurrentText(model.dtype)
        self.device.setCurrentText(model.device)
        self.trust.setChecked(model.trust_remote_code)
        self._loading = False
        self._changed(now=True)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", self.folder.text())
        if folder:
            self.folder.setText(folder)
            self.folder_radio.setChecked(True)

    def _apply(self) -> None:
        model = self.owner.draft.model
        choice = self.source.checkedId()
        model.path = {DEMO: DEMO_MODEL, FOLDER: self.folder.text().strip(), HUB: self.hub_id.text().strip()}[choice]
        model.allow_network = choice == HUB
        model.dtype = self.dtype.currentText()
        model.device = self.device.currentText()
        model.trust_remote_code = self.trust.isChecked()

    def _changed(self, *_, now: bool = False) -> None:
        if self._loading:
            return
        self._apply()
        self.folder.setEnabled(self.folder_radio.isChecked())
        self.hub_id.setEnabled(self.hub_radio.isChecked())
        self.facts, self.problem = None, ""
        self.completeChanged.emit()
        if not self.owner.draft.model.path:
            self._show_problem_text("Choose a model folder or type a hub id.")
            return
        self.status.setText("Reading the model's configuration…")
        self.status.setStyleSheet("")
        config = copy.deepcopy(self.owner.draft)
        self.job.start(lambda ctx: _describe(config), self._show_facts, self._show_problem, now=now,
                       name="Reading the model's configuration", errors=LOG)

    def _show_facts(self, result) -> None:
        facts, estimate = result
        self.facts = facts
        self.status.setText(f"Ready: {facts.architecture} on {facts.device} in {facts.dtype}.")
        self.status.setStyleSheet("color: #1b7f3b")
        self.labels["Architecture"].setText(f"{facts.architecture} ({facts.model_type})")
        self.labels["Parameters"].setText(count(facts.n_params))
        self.labels["Layers"].setText(str(facts.n_layers))
        self.labels["Hidden size"].setText(str(facts.hidden_size))
        self.labels["Vocabulary"].setText(f"{facts.vocab_size:,} tokens")
        self.labels["LoRA targets"].setText(
            "\n".join(f"{role}: {', '.join(names)}" for role, names in facts.lora_targets.items()) or "none found")
        from unlearn_studio.core.run.memory_estimate import format_bytes  # imports torch; loaded by _describe

        parts = "\n".join(f"  {format_bytes(size)}  {what}" for what, size in estimate.parts())
        self.labels["Memory estimate"].setText(
            f"{estimate.summary()} for the current settings; the Review page checks it against free memory.\n{parts}")
        self.completeChanged.emit()
        self.facts_ready.emit()

    def _show_problem(self, error: Exception, trace: str) -> None:
        self._show_problem_text(str(error))

    def _show_problem_text(self, text: str) -> None:
        self.facts, self.problem = None, text
        self.status.setText(text)
        self.status.setStyleSheet("color: #b3261e")
        for label in self.labels.values():
            label.setText("–")
        self.completeChanged.emit()
        self.facts_ready.emit()

    def isComplete(self) -> bool:
        return self.facts is not None and not self.job.pending
