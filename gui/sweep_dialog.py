"""Set up a sweep from the app: up to three settings, each with a list of values; every combination
is one run of the open project, run one after another (the queue), each evaluated so that its
point joins the forget-quality / utility frontier as soon as it finishes. The same grid as
`unlearn-studio sweep PROJECT --grid KEY=V1,V2`."""

from __future__ import annotations

import copy

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.sweep import SweepPoint, grid_points, parse_grid
from unlearn_studio.gui.numbers import setting
from unlearn_studio.gui.status_line import StatusLine
from unlearn_studio.gui.words import hyperparameter_label

ROWS = 3
NONE = ""
RUN_SETTINGS = (("optimizer.lr", "Learning rate"), ("training.max_steps", "Steps"), ("lora.r", "LoRA rank"),
                ("lora.alpha", "LoRA alpha"), ("training.seed", "Seed"))
SUITE_FOR_SWEEP = "fast"  # a sweep needs an evaluation after each run; the quick tier when the project has none


def sweep_settings(config: RunConfig) -> list[tuple[str, str]]:
    """(dotted key, plain label) of every setting a sweep can vary: the run's and the method's numbers."""
    method = get_method(config.method.name)
    params = [(f"method.params.{h.name}", f"{hyperparameter_label(method.name, h.name)} ({method.title})")
              for h in method.hyperparameters if h.type in (int, float) and not h.choices]
    return [*RUN_SETTINGS, *params]


class SweepDialog(QDialog):
    def __init__(self, config: RunConfig, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        self.setMinimumWidth(560)
        self.config = copy.deepcopy(config)
        self.points: list[SweepPoint] = []
        self.settings = sweep_settings(config)
        intro = QLabel("Each combination of the values below is one run of this project, run one after another. "
                       "Every run is evaluated, and its point joins the forget-quality / utility frontier as soon "
                       "as it finishes.")
        intro.setWordWrap(True)
        grid = QGridLayout()
        grid.addWidget(QLabel("<b>Setting</b>"), 0, 0)
        grid.addWidget(QLabel("<b>Values (comma-separated)</b>"), 0, 1)
        self.rows: list[tuple[QComboBox, QLineEdit]] = []
        for number in range(ROWS):
            key = QComboBox()
            key.setObjectName(f"sweepKey{number}")
            key.addItem("(none)" if number else "Choose a setting", NONE)
            for dotted, label in self.settings:
                key.addItem(label, dotted)
            values = QLineEdit()
            values.setObjectName(f"sweepValues{number}")
            key.currentIndexChanged.connect(lambda _, key=key, values=values: self._key_chosen(key, values))
            values.textChanged.connect(self._update)
            grid.addWidget(key, number + 1, 0)
            grid.addWidget(values, number + 1, 1)
            self.rows.append((key, values))
        self.suite_note = QLabel()
        self.suite_note.setWordWrap(True)
        self.suite_note.setStyleSheet("color: #8a6d00")
        if self.config.evaluation.suite == "none":
            self.config.evaluation.suite = SUITE_FOR_SWEEP
            self.suite_note.setText(f"The project evaluates nothing; each run of the sweep is evaluated with the "
                                    f"{SUITE_FOR_SWEEP} suite, which its frontier point needs.")
        self.suite_note.setVisible(bool(self.suite_note.text()))
        self.status = StatusLine("sweepStatus")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Start sweep", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setObjectName("startSweepButton")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(grid)
        layout.addWidget(self.suite_note)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self._update()

    def choose(self, row: int, key: str, values: str) -> None:
        """Set one row: a dotted key and its comma-separated values."""
        combo, edit = self.rows[row]
        combo.setCurrentIndex(combo.findData(key))
        edit.setText(values)

    def _key_chosen(self, combo: QComboBox, edit: QLineEdit) -> None:
        key = combo.currentData()
        if key and not edit.text().strip():
            node = self.config
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
            edit.setPlaceholderText(f"now {setting(node)}; e.g. several values around it" if node is not None else "")
        self._update()

    def grid(self) -> list[str]:
        """The rows as `KEY=V1,V2` specs (the command line's --grid)."""
        return [f"{combo.currentData()}={edit.text().strip()}" for combo, edit in self.rows
                if combo.currentData() and edit.text().strip()]

    def _update(self) -> None:
        self.points = []
        try:
            self.points = grid_points(self.config, parse_grid(self.grid()))
        except UserError as error:
            self.status.say(f"{error.problem}. {error.fix}" if self.grid() else
                            "Choose a setting and type the values to try.", problem=bool(self.grid()))
        else:
            self.status.say(f"{len(self.points)} run{'s' if len(self.points) != 1 else ''}, one after another.")
        self.start_button.setEnabled(bool(self.points))

    def accept(self) -> None:
        if self.points:
            super().accept()
