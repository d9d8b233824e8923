"""Form fields built from declarations: a method's hyperparameters and the run settings.

Each field edits one value of the draft RunConfig, checks it as the engine would, and shows a
problem under itself instead of accepting a bad value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QWidget

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.numbers import setting as setting_text
from unlearn_studio.gui.words import hyperparameter_label, hyperparameter_tooltip

DEBOUNCE_MS = 250  # a preview or check starts after this pause in typing
NUMBER_STYLE_BAD = "QLineEdit { border: 1px solid #b3261e; background: #fdf1f0; }"


@dataclass(frozen=True)
class Setting:
    """One run setting shown in the method page's form (a dotted path into RunConfig)."""

    path: str
    label: str
    type: type  # int, float, str, bool, list (comma-separated), or "optional" str
    help: str
    advanced: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False  # empty means None

    def get(self, config: RunConfig) -> Any:
        node: Any = config
        for part in self.path.split("."):
            node = getattr(node, part)
        return node

    def set(self, config: RunConfig, value: Any) -> None:
        *parents, leaf = self.path.split(".")
        node: Any = config
        for part in parents:
            node = getattr(node, part)
        setattr(node, leaf, value)
        if self.path == "training.max_steps" and value is not None:
            config.training.epochs = None


SETTINGS = (
    Setting("training.max_steps", "Steps", int, "optimizer steps of the run; empty: the project's epochs",
            optional=True),
    Setting("optimizer.lr", "Learning rate", float, "peak learning rate of the LoRA weights"),
    Setting("evaluation.suite", "Evaluation", str, "before/after evaluation: none, fast (first items), "
            "full (every item) or demo (the demo world's sets)", choices=("none", "fast", "full", "demo")),
    Setting("training.batch_size", "Batch size", int, "examples per role per micro-batch", advanced=True),
    Setting("training.grad_accum", "Gradient accumulation", int, "micro-batches per optimizer step", advanced=True),
    Setting("training.max_length", "Max length", int, "tokens per example; longer ones are cut", advanced=True),
    Setting("training.seed", "Seed", int, "data order and LoRA initialisation", advanced=True),
    Setting("lora.r", "LoRA rank", int, "rank of the adapter", advanced=True),
    Setting("lora.alpha", "LoRA alpha", float, "scaling numerator (scale = alpha / r)", advanced=True),
    Setting("lora.dropout", "LoRA dropout", float, "dropout on the adapter input", advanced=True),
    Setting("lora.roles", "LoRA targets", list, "projections by role: q, k, v, o, gate, up, down", advanced=True),
    Setting("lora.layers", "LoRA layers", str, "e.g. 4-7 or 0.5-1.0 (fraction of depth); empty: every layer",
            advanced=True, optional=True),
    Setting("optimizer.name", "Optimizer", str, "AdamW, Adam or SGD", advanced=True, choices=("adamw", "adam", "sgd")),
    Setting("optimizer.weight_decay", "Weight decay", float, "decoupled weight decay", advanced=True),
    Setting("schedule.name", "LR schedule", str, "learning-rate schedule", advanced=True,
            choices=("constant", "linear", "cosine")),
    Setting("schedule.warmup_steps", "Warm-up steps", int, "steps of linear warm-up", advanced=True),
    Setting("training.mixed_precision", "Mixed precision", str, "bf16/fp16 autocast (GPU)", advanced=True,
            choices=("no", "bf16", "fp16")),
    Setting("training.checkpoint_every", "Checkpoint every", int, "steps between checkpoints (for resume)",
            advanced=True),
)


def parse(text: str, kind: type) -> Any:
    text = text.strip()
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    if kind is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


class Field(QObject):
    """An editor for one value: ``widget`` to place, ``error`` under it, ``changed`` on edits."""

    changed = Signal()

    def __init__(self, label: str, kind: type, help_text: str, value: Any, *,
                 choices: tuple | None = None, check: Callable[[Any], Any] | None = None, optional: bool = False):
        super().__init__()
        self.label_text, self.kind, self.check, self.optional = label, kind, check, optional
        self.problem = ""
        self.error = QLabel()
        self.error.setStyleSheet("color: #b3261e")
        self.error.setWordWrap(True)
        self.error.hide()
        if kind is bool:
            self.widget: QWidget = QCheckBox()
            self.widget.setChecked(bool(value))
            self.widget.toggled.connect(self._edited)
        elif choices:
            self.widget = QComboBox()
            self.widget.addItems([str(c) for c in choices])
            self.widget.setCurrentText(str(value))
            self.widget.currentTextChanged.connect(self._edited)
            self._choices = {str(c): c for c in choices}
        else:
            self.widget = QLineEdit(setting_text(value))
            self.widget.textChanged.connect(self._edited)
        self.widget.setToolTip(help_text)
        self.label = QLabel(f"{label}:")
        self.label.setToolTip(help_text)

    def set_value(self, value: Any) -> None:
        self.widget.blockSignals(True)
        if isinstance(self.widget, QCheckBox):
            self.widget.setChecked(bool(value))
        elif isinstance(self.widget, QComboBox):
            self.widget.setCurrentText(str(value))
        else:
            self.widget.setText(setting_text(value))
        self.widget.blockSignals(False)
        self._show_problem("")

    def value(self) -> Any:
        """The checked value; raises ValueError or UserError for a bad one."""
        if isinstance(self.widget, QCheckBox):
            value = self.widget.isChecked()
        elif isinstance(self.widget, QComboBox):
            value = self._choices[self.widget.currentText()]
        else:
            text = self.widget.text()
            if self.optional and not text.strip():
                return None
            try:
                value = parse(text, self.kind)
            except ValueError:
                raise ValueError(f"{self.label_text} must be {'an integer' if self.kind is int else 'a number'}") from None
        return self.check(value) if self.check is not None else value

    def _edited(self, *_) -> None:
        try:
            self.value()
        except (ValueError, UserError) as error:
            self._show_problem(error.problem if isinstance(error, UserError) else str(error))
        else:
            self._show_problem("")
        self.changed.emit()

    def _show_problem(self, text: str) -> None:
        self.problem = text
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if isinstance(self.widget, QLineEdit):
            self.widget.setStyleSheet(NUMBER_STYLE_BAD if text else "")


def hyperparameter_field(h, value: Any, method) -> Field:
    """The field of hyperparameter ``h`` of the method class ``method``, under its plain label."""
    return Field(hyperparameter_label(method.name, h.name), h.type, hyperparameter_tooltip(method.name, h), value,
                 choices=h.choices, check=lambda v: h.check(v, method.title))


def setting_field(setting: Setting, config: RunConfig) -> Field:
    def check(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0 and setting.type in (int, float) \
                and setting.path not in ("training.seed", "schedule.warmup_steps", "lora.dropout", "optimizer.weight_decay"):
            raise ValueError(f"{setting.label} must be greater than 0")
        if isinstance(value, (int, float)) and value < 0:
            raise ValueError(f"{setting.label} must not be negative")
        if setting.type is list and not value:
            raise ValueError(f"{setting.label} needs at least one entry")
        return value

    tooltip = f"{setting.label}: {setting.help}.\nIn the project file: {setting.path}"
    return Field(setting.label, setting.type, tooltip, setting.get(config), choices=setting.choices,
                 check=check, optional=setting.optional)
