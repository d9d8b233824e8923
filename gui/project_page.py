"""One project: its header, then tabs for its runs, data sets (with a preview of the selected
one), model facts and the run config as TOML. The data and model are read in the background;
what arrives for a project no longer shown is dropped."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.gui.jobs import Job, JobContext, Jobs
from unlearn_studio.gui.numbers import count
from unlearn_studio.gui.preview_table import PreviewTable

if TYPE_CHECKING:
    from unlearn_studio.core.project.config import RunConfig
    from unlearn_studio.core.project.summary import DatasetSummary, ModelSummary

DATASET_COLUMNS = ("Role", "File", "Format", "Kind", "Rows", "Check")
CHECK_COLUMN = len(DATASET_COLUMNS) - 1


def _summarize_dataset(config: RunConfig, role: str, _ctx: JobContext) -> DatasetSummary:
    # project.summary pulls in torch and transformers: imported on a worker, never at start-up.
    from unlearn_studio.core.project.summary import summarize_dataset

    return summarize_dataset(config, role)


def _summarize_model(config: RunConfig, _ctx: JobContext) -> ModelSummary:
    from unlearn_studio.core.project.summary import summarize_model

    return summarize_model(config)


def selectable(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def settings_line(config: RunConfig) -> str:
    t = config.training
    steps = f"{t.max_steps} steps" if t.max_steps is not None else f"{t.epochs:g} epochs"
    return (f"Method {config.method.name} · LoRA r={config.lora.r} α={config.lora.alpha:g} · {steps}, batch "
            f"{t.batch_size}, max length {t.max_length} · seed {t.seed}")


class ProjectPage(QWidget):
    summaries_done = Signal()  # every background summary for the current project has reported

    def __init__(self, jobs: Jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.config: RunConfig | None = None
        self.project_path: Path | None = None
        self.summaries: dict[str, DatasetSummary] = {}
        self._jobs: list[Job] = []

        self.title = QLabel("Opening…")
        self.title.setObjectName("projectTitle")
        title_font = self.title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.4)
        title_font.setBold(True)
        self.title.setFont(title_font)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.subtitle = QLabel()
        self.subtitle.setObjectName("projectSubtitle")
        self.subtitle.setWordWrap(True)
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("projectTabs")
        self.runs_holder = QWidget()  # the runs panel goes here once the plotting library has loaded
        self.runs_layout = QVBoxLayout(self.runs_holder)
        self.runs_layout.setContentsMargins(0, 0, 0, 0)
        self.runs_waiting = QLabel("Loading the plotting library…")
        self.runs_waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.runs_waiting.setStyleSheet("color: #666")
        self.runs_layout.addWidget(self.runs_waiting)
        self.tabs.addTab(self.runs_holder, "Runs")

        self.datasets = QTableWidget(0, len(DATASET_COLUMNS))
        self.datasets.setObjectName("datasetsTable")
        self.datasets.setHorizontalHeaderLabels(DATASET_COLUMNS)
        self.datasets.verticalHeader().setVisible(False)
        self.datasets.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.datasets.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.datasets.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.datasets.setWordWrap(True)
        header = self.datasets.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(CHECK_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.preview_label = QLabel()
        self.preview_label.setWordWrap(True)
        self.preview = PreviewTable()
        self.datasets.itemSelectionChanged.connect(self._show_preview)
        preview_panel = QWidget()
        preview_layout = QVBoxLayout(preview_panel)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        preview_layout.addWidget(self.preview_label)
        preview_layout.addWidget(self.preview)
        data_split = QSplitter(Qt.Orientation.Vertical)
        data_split.addWidget(self.datasets)
        data_split.addWidget(preview_panel)
        data_split.setSizes([160, 340])
        self.tabs.addTab(data_split, "Data sets")

        self.model_form = QFormLayout()
        self.model_form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        model_widget = QWidget()
        model_widget.setLayout(self.model_form)
        self.tabs.addTab(model_widget, "Model")

        config_widget = QWidget()
        config_layout = QVBoxLayout(config_widget)
        self.toml = QPlainTextEdit()
        self.toml.setObjectName("configToml")
        self.toml.setReadOnly(True)
        self.toml.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        copy_toml = QPushButton("Copy TOML")
        copy_toml.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.toml.toPlainText()))
        self.command = QLabel()
        self.command.setObjectName("checkCommand")
        self.command.setWordWrap(True)
        self.command.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        config_layout.addWidget(self.command)
        config_layout.addWidget(self.toml)
        config_layout.addWidget(copy_toml, 0, Qt.AlignmentFlag.AlignRight)
        self.tabs.addTab(config_widget, "Run config")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addWidget(self.tabs, 1)

    def set_runs_panel(self, panel: QWidget) -> None:
        """Put the runs panel in its tab (it needs the plotting library, which loads after the window)."""
        self.runs_waiting.hide()
        self.runs_layout.addWidget(panel)

    # ---- a project -------------------------------------------------------------------------------

    def show_project(self, path: Path, config: RunConfig, *, read_files: bool = True) -> None:
        """Show ``config`` (read from ``path``); ``read_files`` starts reading its data and model
        in the background (the window's first paint shows the project before that)."""
        for job in self._jobs:
            job.discard()
        self._jobs = []
        self.project_path, self.config = path, config
        self.title.setText(config.name)
        self.title.setToolTip(f"{config.name}\nFile: {path}")
        description = (config.description + "\n") if config.description else ""
        self.subtitle.setText(f"{description}{settings_line(config)}")
        self.subtitle.setToolTip(f"File: {path}")
        self.toml.setPlainText(config.to_toml())
        self.command.setText(f"File: {path}\nCheck it from the command line:  "
                             f"unlearn-studio check {shlex.quote(str(path))}")
        self._fill_dataset_rows(config)
        self._clear_model_form()
        self.model_form.addRow("Model:", QLabel(f"{config.model.path} (waiting to be read…)"))
        if read_files:
            self.read_files()

    def read_files(self) -> None:
        """Summarize every data set and the model in the background."""
        config = self.config
        if config is None or self._jobs:
            return
        for role in config.data:
            self._jobs.append(self.jobs.start(lambda ctx, role=role: _summarize_dataset(config, role, ctx),
                                              self._show_dataset, lambda *_, role=role: self._dataset_failed(role),
                                              name=f"Reading the {role} data"))
        self._jobs.append(self.jobs.start(lambda ctx: _summarize_model(config, ctx), self._show_model,
                                          lambda *_: self._model_failed(), name="Reading the model"))
        for role_row in range(self.datasets.rowCount()):
            self.datasets.item(role_row, CHECK_COLUMN).setText("reading…")

    def _fill_dataset_rows(self, config: RunConfig) -> None:
        self.summaries = {}
        self.datasets.blockSignals(True)
        self.datasets.clearSelection()
        self.datasets.setRowCount(len(config.data))
        for row, (role, source) in enumerate(config.data.items()):
            for column, text in enumerate((role, source.path, source.format, "", "", "waiting to be read…")):
                self.datasets.setItem(row, column, QTableWidgetItem(text))
        if config.data:
            self.datasets.selectRow(0)
        self.datasets.blockSignals(False)
        self._show_preview()

    def _row_of(self, role: str) -> int:
        return list(self.config.data).index(role)

    def _selected_role(self) -> str | None:
        rows = self.datasets.selectionModel().selectedRows()
        return self.datasets.item(rows[0].row(), 0).text() if rows else None

    def _show_dataset(self, summary: DatasetSummary) -> None:
        row = self._row_of(summary.role)
        if summary.problem:
            cells = (summary.role, summary.path, "", "", "", summary.problem)
        else:
            check = "OK" if not summary.bad_rows else f"{summary.bad_rows} bad rows (skipped)"
            cells = (summary.role, summary.path, summary.format, summary.kind, f"{summary.rows:,}", check)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(summary.resolved if column == 1 else text)
            if column == 4:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if column == CHECK_COLUMN and (summary.problem or summary.bad_rows):
                item.setForeground(Qt.GlobalColor.darkRed)
            self.datasets.setItem(row, column, item)
        self.datasets.resizeRowsToContents()
        self.summaries[summary.role] = summary
        if self._selected_role() == summary.role:
            self._show_preview()
        self._maybe_done()

    def _dataset_failed(self, role: str) -> None:
        self.datasets.item(self._row_of(role), CHECK_COLUMN).setText("could not be read (the error is in the Activity log)")
        self._maybe_done()

    def _show_preview(self) -> None:
        role = self._selected_role()
        summary = self.summaries.get(role) if role else None
        if summary is None:
            self.preview.show_rows([])
            self.preview_label.setText(f"Reading the {role} data…" if role else "Select a data set to see its first rows.")
            return
        self.preview.show_rows(summary.preview)
        shown = f"first {len(summary.preview)} of {summary.rows:,} rows" if summary.preview else "no rows"
        self.preview_label.setText(f"Preview of {summary.role} ({summary.path}): {shown}")

    def _clear_model_form(self) -> None:
        while self.model_form.rowCount():
            self.model_form.removeRow(0)

    def _show_model(self, summary: ModelSummary) -> None:
        self._clear_model_form()
        self.model_form.addRow("Folder:", selectable(summary.path))
        if summary.problem:
            problem = selectable(summary.problem)
            problem.setStyleSheet("color: darkred")
            self.model_form.addRow("Problem:", problem)
        else:
            facts = summary.facts
            self.model_form.addRow("Architecture:", selectable(f"{facts.architecture} ({facts.model_type})"))
            self.model_form.addRow("Parameters:", selectable(count(facts.n_params)))
            self.model_form.addRow("Layers:", selectable(str(facts.n_layers)))
            self.model_form.addRow("Hidden size:", selectable(str(facts.hidden_size)))
            self.model_form.addRow("Vocabulary:", selectable(f"{facts.vocab_size:,} tokens"))
            targets = "\n".join(f"{role}: {', '.join(names)}" for role, names in facts.lora_targets.items())
            self.model_form.addRow("LoRA targets:", selectable(targets or "none found"))
        self._maybe_done()

    def _model_failed(self) -> None:
        self._clear_model_form()
        self.model_form.addRow("Problem:", selectable("The model could not be read (see the Activity log)."))
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._jobs and not any(job.running for job in self._jobs):
            self.summaries_done.emit()
