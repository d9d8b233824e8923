"""The main window: the projects in the store, and the open project's data sets, model and config."""

from __future__ import annotations

import shlex
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QFont, QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.config import RunConfig
from unlearn_studio.core.project_summary import DatasetSummary, ModelSummary, summarize_dataset, summarize_model
from unlearn_studio.core.store import Store

from .error_dialog import show_error
from .worker import JobRunner

APP_NAME = "Unlearn Studio"
DATASET_COLUMNS = ("Role", "File", "Format", "Kind", "Rows", "Check")


def _human_count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


class ProjectPage(QWidget):
    """One project: header, then tabs for data sets, model facts and the run config."""

    summaries_done = Signal()  # every background summary for the current project has reported

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.config: RunConfig | None = None
        self.project_path: Path | None = None
        self._outstanding = 0

        self.title = QLabel()
        self.title.setObjectName("projectTitle")
        title_font = self.title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.5)
        title_font.setBold(True)
        self.title.setFont(title_font)
        self.subtitle = QLabel()
        self.subtitle.setWordWrap(True)
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.tabs = QTabWidget()
        self.datasets = QTableWidget(0, len(DATASET_COLUMNS))
        self.datasets.setObjectName("datasetsTable")
        self.datasets.setHorizontalHeaderLabels(DATASET_COLUMNS)
        self.datasets.verticalHeader().setVisible(False)
        self.datasets.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.datasets.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.datasets.setWordWrap(True)
        header = self.datasets.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(DATASET_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.preview_label = QLabel("Select a data set to see its first rows.")
        self.preview = QTableWidget(0, 0)
        self.preview.setObjectName("previewTable")
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview.horizontalHeader().setStretchLastSection(True)
        self.preview.setWordWrap(False)
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
        self.summaries: dict[str, DatasetSummary] = {}

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
        self.command.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        config_layout.addWidget(self.command)
        config_layout.addWidget(self.toml)
        config_layout.addWidget(copy_toml, 0, Qt.AlignmentFlag.AlignRight)
        self.tabs.addTab(config_widget, "Run config")

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addWidget(self.tabs, 1)

    def show_project(self, path: Path, config: RunConfig) -> None:
        self.project_path, self.config = path, config
        self.title.setText(config.name)
        method = config.method.name
        steps = (f"{config.training.max_steps} steps" if config.training.max_steps is not None
                 else f"{config.training.epochs} epochs")
        self.subtitle.setText(
            f"{config.description + chr(10) if config.description else ''}"
            f"Method {method} · LoRA r={config.lora.r} α={config.lora.alpha:g} · {steps}, batch "
            f"{config.training.batch_size}, max length {config.training.max_length} · seed {config.training.seed}\n"
            f"File: {path}"
        )
        self.toml.setPlainText(config.to_toml())
        self.command.setText(f"Check it from the command line:  unlearn-studio check {shlex.quote(str(path))}")
        self._fill_dataset_rows(config)
        self._clear_model_form()
        self.model_form.addRow("Model:", QLabel(f"{config.model.path} (reading…)"))
        self._outstanding = len(config.data) + 1
        for role in config.data:
            self.jobs.start(lambda role=role: summarize_dataset(config, role), self._show_dataset, self._job_failed)
        self.jobs.start(lambda: summarize_model(config), self._show_model, self._job_failed)

    def _fill_dataset_rows(self, config: RunConfig) -> None:
        self.summaries = {}
        self.preview.setRowCount(0)
        self.preview.setColumnCount(0)
        self.preview_label.setText("Select a data set to see its first rows.")
        self.datasets.setRowCount(len(config.data))
        for row, (role, source) in enumerate(config.data.items()):
            for column, text in enumerate((role, source.path, source.format, "", "", "reading…")):
                self.datasets.setItem(row, column, QTableWidgetItem(text))

    def _row_of(self, role: str) -> int:
        return list(self.config.data).index(role)

    def _show_dataset(self, summary: DatasetSummary) -> None:
        if summary.role not in (self.config.data if self.config else {}):
            return  # a summary of a project that is no longer shown
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
            if column == 5 and (summary.problem or summary.bad_rows):
                item.setForeground(Qt.GlobalColor.darkRed)
            self.datasets.setItem(row, column, item)
        self.datasets.resizeRowsToContents()
        self.summaries[summary.role] = summary
        if len(self.summaries) == 1:
            self.datasets.selectRow(row)
        self._one_done()

    def _show_preview(self) -> None:
        selected = self.datasets.selectionModel().selectedRows()
        summary = self.summaries.get(self.datasets.item(selected[0].row(), 0).text()) if selected else None
        if summary is None:
            return
        columns = list(dict.fromkeys(key for row in summary.preview for key in row))
        self.preview.setColumnCount(len(columns))
        self.preview.setHorizontalHeaderLabels(columns)
        self.preview.setRowCount(len(summary.preview))
        for r, row in enumerate(summary.preview):
            for c, column in enumerate(columns):
                item = QTableWidgetItem(row.get(column, ""))
                item.setToolTip(row.get(column, ""))
                self.preview.setItem(r, c, item)
        self.preview.resizeColumnsToContents()
        for c in range(len(columns)):
            self.preview.setColumnWidth(c, min(self.preview.columnWidth(c), 320))
        shown = f"first {len(summary.preview)} of {summary.rows:,} rows" if summary.preview else "no rows"
        self.preview_label.setText(f"Preview of {summary.role} ({summary.path}): {shown}")

    def _clear_model_form(self) -> None:
        while self.model_form.rowCount():
            self.model_form.removeRow(0)

    def _show_model(self, summary: ModelSummary) -> None:
        self._clear_model_form()
        self.model_form.addRow("Folder:", _selectable(summary.path))
        if summary.problem:
            problem = _selectable(summary.problem)
            problem.setStyleSheet("color: darkred")
            self.model_form.addRow("Problem:", problem)
        else:
            facts = summary.facts
            self.model_form.addRow("Architecture:", _selectable(f"{facts.architecture} ({facts.model_type})"))
            self.model_form.addRow("Parameters:", _selectable(_human_count(facts.n_params)))
            self.model_form.addRow("Layers:", _selectable(str(facts.n_layers)))
            self.model_form.addRow("Hidden size:", _selectable(str(facts.hidden_size)))
            self.model_form.addRow("Vocabulary:", _selectable(f"{facts.vocab_size:,} tokens"))
            targets = "\n".join(f"{role}: {', '.join(names)}" for role, names in facts.lora_targets.items())
            self.model_form.addRow("LoRA targets:", _selectable(targets or "none found"))
        self._one_done()

    def _job_failed(self, error: Exception, trace: str) -> None:
        show_error(self, error, trace)
        self._one_done()

    def _one_done(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self.summaries_done.emit()


def _selectable(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class MainWindow(QMainWindow):
    def __init__(self, store: Store | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.jobs = JobRunner(self)
        self.setWindowTitle(APP_NAME)

        self.projects = QListWidget()
        self.projects.setObjectName("projectsList")
        self.projects.setWordWrap(True)
        self.projects.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.projects.itemActivated.connect(self._project_activated)
        projects_panel = QWidget()
        projects_layout = QVBoxLayout(projects_panel)
        heading = QLabel("Projects")
        heading.setFont(QFont(heading.font().family(), -1, QFont.Weight.Bold))
        projects_layout.addWidget(heading)
        projects_layout.addWidget(self.projects)

        self.page = ProjectPage(self.jobs)
        splitter = QSplitter()
        splitter.addWidget(projects_panel)
        splitter.addWidget(self.page)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 780])
        self.setCentralWidget(splitter)

        open_action = QAction("&Open project…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._choose_project)
        reload_action = QAction("&Reload", self)
        reload_action.setShortcut(QKeySequence.StandardKey.Refresh)
        reload_action.triggered.connect(lambda: self.page.project_path and self.open_project(self.page.project_path))
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu = self.menuBar().addMenu("&File")
        for action in (open_action, reload_action, quit_action):
            file_menu.addAction(action)
        toolbar = self.addToolBar("Project")
        toolbar.setObjectName("projectToolbar")
        toolbar.addAction(open_action)
        toolbar.addAction(reload_action)

        self.statusBar().showMessage(f"Project store: {store.path}" if store else "No project store open")
        self._restore_geometry()

    def open_project(self, path: Path) -> bool:
        """Load a project file and show it; a bad file gets the error dialog and changes nothing."""
        path = Path(path).resolve()
        try:
            config = RunConfig.load(path)
        except Exception as error:  # UserError for bad files; anything else is shown with its traceback
            show_error(self, error)
            return False
        if self.store is not None and not self.store.readonly:
            self.store.ensure_project(config.name, path)
        self.setWindowTitle(f"{config.name} — {APP_NAME}")
        self.page.show_project(path, config)
        self._refresh_projects(path)
        return True

    def _refresh_projects(self, current: Path | None = None) -> None:
        self.projects.clear()
        for project in self.store.projects() if self.store else []:
            item = QListWidgetItem(project["name"])
            item.setToolTip(project["path"])
            item.setData(Qt.ItemDataRole.UserRole, project["path"])
            self.projects.addItem(item)
            if current and Path(project["path"]) == current:
                self.projects.setCurrentItem(item)

    def _project_activated(self, item: QListWidgetItem) -> None:
        self.open_project(Path(item.data(Qt.ItemDataRole.UserRole)))

    def _choose_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", "", "Project files (*.toml)")
        if path:
            self.open_project(Path(path))

    def _restore_geometry(self) -> None:
        geometry = QSettings().value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 680)

    def closeEvent(self, event) -> None:
        QSettings().setValue("main_window/geometry", self.saveGeometry())
        self.jobs.wait()
        super().closeEvent(event)
