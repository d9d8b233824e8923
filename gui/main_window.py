"""The main window: the projects in the store; the open project's runs (with the live monitor and
the evaluation of the selected run), data sets, model and config; and the run actions."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QFont, QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.files import remove_own_folder
from unlearn_studio.core.project.config import RunConfig

from .error_dialog import show_error
from .runs_panel import RunsPanel
from .worker import JobRunner

if TYPE_CHECKING:
    from unlearn_studio.core.project.store import Store
    from unlearn_studio.core.project.summary import DatasetSummary, ModelSummary

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
        self.tabs.setObjectName("projectTabs")
        self.runs = RunsPanel(jobs)
        self.tabs.addTab(self.runs, "Runs")
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
            self.jobs.start(lambda role=role: _summarize_dataset(config, role), self._show_dataset, self._job_failed)
        self.jobs.start(lambda: _summarize_model(config), self._show_model, self._job_failed)

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


def _summarize_dataset(config: RunConfig, role: str) -> DatasetSummary:
    # project_summary pulls in torch and transformers: imported on the worker, never at start-up.
    from unlearn_studio.core.project.summary import summarize_dataset

    return summarize_dataset(config, role)


def _summarize_model(config: RunConfig) -> ModelSummary:
    from unlearn_studio.core.project.summary import summarize_model

    return summarize_model(config)


def _selectable(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class MainWindow(QMainWindow):
    run_started = Signal(object)  # the RunSession of a run just started

    def __init__(self, store: Store | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.jobs = JobRunner(self)
        self.session = None  # the run in progress (one at a time: one copy of the weights in memory)
        self.project_id: int | None = None
        self.setWindowTitle(APP_NAME)

        self.projects = QListWidget()
        self.projects.setObjectName("projectsList")
        self.projects.setWordWrap(True)
        self.projects.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.projects.setMinimumWidth(170)  # on a small screen the splitter would squeeze names to a word a line
        self.projects.itemActivated.connect(self._project_activated)
        self.projects.itemClicked.connect(self._project_activated)
        projects_panel = QWidget()
        projects_layout = QVBoxLayout(projects_panel)
        heading = QLabel("Projects")
        heading.setFont(QFont(heading.font().family(), -1, QFont.Weight.Bold))
        projects_layout.addWidget(heading)
        projects_layout.addWidget(self.projects)

        self.page = ProjectPage(self.jobs)
        self.runs = self.page.runs
        self.runs.selection_changed.connect(self._update_actions)
        self.runs.monitor.resume_requested.connect(self.resume_run)
        self.runs.evaluation.failed.connect(self._evaluation_failed)
        splitter = QSplitter()
        splitter.addWidget(projects_panel)
        splitter.addWidget(self.page)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 880])
        self.setCentralWidget(splitter)
        self._make_actions()
        self.statusBar().showMessage(f"Project store: {store.path}" if store else "No project store open")
        self._restore_geometry()
        self._update_actions()

    # ---- actions -----------------------------------------------------------------------------------

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(lambda *_: slot())
        return action

    def _make_actions(self) -> None:
        self.open_action = self._action("&Open project…", self._choose_project, QKeySequence.StandardKey.Open,
                                        "Open a project file (.toml)")
        self.reload_action = self._action("&Reload project", self._reload, QKeySequence.StandardKey.Refresh,
                                          "Read the project file again")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.new_run_action = self._action("&New run…", self.new_run, QKeySequence.StandardKey.New,
                                           "Set up and start a run: model, method, data, review")
        self.rerun_action = self._action("&Re-run", self.rerun, None, "Start the selected run again with its config")
        self.clone_action = self._action("&Clone…", self.clone_run, None,
                                         "Open the wizard on the selected run's config to change it and start")
        self.stop_action = self._action("&Stop && save", self.stop_run, None,
                                        "End the run in progress after this step, keeping its adapter")
        self.resume_action = self._action("Res&ume from checkpoint", lambda: self.resume_run(), None,
                                          "Continue an interrupted run from its last checkpoint")
        self.export_action = self._action("&Export…", self.export_run, None, "Export the selected run's adapter")
        self.delete_action = self._action("&Delete run…", self.delete_run, QKeySequence.StandardKey.Delete,
                                          "Remove the selected run from the project (its files are kept unless asked)")
        self.compare_action = self._action("Com&pare two runs", self.compare_runs, None,
                                           "Compare the two selected runs side by side")
        self.extsub_action = self._action("Combine adapters (E&xt-Sub)…", self.combine_adapters, None,
                                          "Subtract an anti-expert adapter's deficiency from an expert adapter")
        file_menu = self.menuBar().addMenu("&File")
        for action in (self.open_action, self.reload_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = self.menuBar().addMenu("&Run")
        for action in (self.new_run_action, self.rerun_action, self.clone_action, None, self.stop_action,
                       self.resume_action, None, self.export_action, self.compare_action, None, self.delete_action):
            run_menu.addSeparator() if action is None else run_menu.addAction(action)
        tools_menu = self.menuBar().addMenu("&Tools")
        tools_menu.addAction(self.extsub_action)
        toolbar = self.addToolBar("Project")
        toolbar.setObjectName("projectToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.open_action, self.reload_action, None, self.new_run_action, self.rerun_action,
                       self.clone_action, self.stop_action, self.resume_action, None, self.export_action,
                       self.compare_action, self.delete_action):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)

    def _writable(self) -> bool:
        return self.store is not None and not self.store.readonly

    def _running(self) -> bool:
        return self.session is not None and self.session.running

    def _update_actions(self) -> None:
        runs = self.runs.selected_runs()
        one = runs[0] if len(runs) == 1 else None
        writable, running = self._writable(), self._running()
        has_project = self.page.config is not None
        self.new_run_action.setEnabled(writable and has_project and not running)
        self.rerun_action.setEnabled(writable and one is not None and not running)
        self.clone_action.setEnabled(writable and one is not None and not running)
        self.stop_action.setEnabled(running)
        from .monitor import RESUMABLE, _has_checkpoint

        self.resume_action.setEnabled(writable and not running and one is not None
                                      and one["status"] in RESUMABLE and _has_checkpoint(one))
        self.export_action.setEnabled(one is not None and one["status"] in ("finished", "stopped"))
        self.compare_action.setEnabled(len(runs) == 2)
        is_live = one is not None and running and self.session.run_id == one["id"]
        self.delete_action.setEnabled(writable and bool(runs) and not is_live)

    # ---- projects ----------------------------------------------------------------------------------

    def open_project(self, path: Path) -> bool:
        """Load a project file and show it; a bad file gets the error dialog and changes nothing."""
        path = Path(path).resolve()
        try:
            config = RunConfig.load(path)
        except Exception as error:  # UserError for bad files; anything else is shown with its traceback
            show_error(self, error)
            return False
        self.project_id = None
        if self._writable():
            self.project_id = self.store.ensure_project(config.name, path)
        elif self.store is not None:
            self.project_id = next((p["id"] for p in self.store.projects() if Path(p["path"]) == path), None)
        self.setWindowTitle(f"{config.name} — {APP_NAME}")
        self.page.show_project(path, config)
        self.runs.show_project(self.store, self.project_id)
        self._refresh_projects(path)
        self._update_actions()
        return True

    def _reload(self) -> None:
        if self.page.project_path:
            self.open_project(self.page.project_path)

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
        path = Path(item.data(Qt.ItemDataRole.UserRole))
        if path != self.page.project_path:
            self.open_project(path)

    def _choose_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", "", "Project files (*.toml)")
        if path:
            self.open_project(Path(path))

    # ---- runs --------------------------------------------------------------------------------------

    def new_run(self, config: RunConfig | None = None):
        """Open the wizard on ``config`` (default: the open project's); Start saves and runs it."""
        from .wizard import NewRunWizard

        base = config or self.page.config
        if base is None:
            return None
        wizard = NewRunWizard(self.jobs, base, self.page.project_path,
                              store_path=self.store.path if self.store else None, parent=self)
        wizard.accepted.connect(lambda: self._wizard_accepted(wizard))
        wizard.open()
        self.wizard = wizard
        return wizard

    def _wizard_accepted(self, wizard) -> None:
        path = Path(wizard.project_path).expanduser().resolve()
        config = wizard.result_config()
        if not (wizard.unchanged() and path == wizard.base_path):
            try:
                config.save(path)
            except Exception as error:
                show_error(self, error)
                return
        if self.open_project(path):
            self.start_run(RunConfig.load(path))

    def start_run(self, config: RunConfig, resume: str | Path | None = None):
        """Start ``config`` as a run of the open project (or continue one from ``resume``)."""
        from .run_session import RunSession

        if self._running():
            show_error(self, _user_error("A run is already in progress",
                                         "Wait for it to end, or stop it (Run ▸ Stop & save) first."))
            return None
        session = RunSession(self.jobs, self.store if self._writable() else None, config,
                             project_id=self.project_id, resume=resume, parent=self)
        session.event.connect(lambda event: self._session_event(session, event))
        session.ended.connect(lambda result: self._session_ended(session, result))
        session.crashed.connect(lambda error, trace: self._session_crashed(session, error, trace))
        self.session = session
        self.runs.follow(session)
        self.page.tabs.setCurrentWidget(self.runs)
        session.start()
        self.statusBar().showMessage(f"Starting a {config.method.name} run…")
        self._update_actions()
        self.run_started.emit(session)
        return session

    def _session_event(self, session, event) -> None:
        from unlearn_studio.core.events import EvaluationEvent, FailedEvent, FinishedEvent, StatusEvent

        if isinstance(event, StatusEvent) and event.status in ("running", "resumed") and self.store is not None:
            if session.run_id and session.run_id not in self.runs.table.run_ids():
                self.runs.select_run(session.run_id)
            else:
                self.runs.refresh()
        if isinstance(event, (StatusEvent, FinishedEvent, FailedEvent)):
            self.statusBar().showMessage(f"Run {session.run_id[:8]}: {event.status}")
            if isinstance(event, StatusEvent) and event.status == "paused":
                self.runs.refresh()
        if isinstance(event, FailedEvent) and event.status == "failed":
            show_error(self, _user_error(event.message, event.fix or "See the run's log."), event.traceback)
        if isinstance(event, EvaluationEvent) and event.phase == "after":
            self.runs.evaluation.set_run(self.store, session.run_id)

    def _session_ended(self, session, result) -> None:
        self.runs.monitor.detach() if self.runs.monitor.session is session else None
        if self.store is not None and result.run_id:
            self.runs.select_run(result.run_id, reload=True)
        self.statusBar().showMessage(f"Run {result.run_id[:8]} {result.status} after {result.steps} steps")
        self._update_actions()

    def _session_crashed(self, session, error: Exception, trace: str) -> None:
        """The run did not start (bad input is a UserError); one dialog, and the run's log."""
        self.runs.monitor.append_log("error", str(error))
        self.runs.monitor.status.setText("Did not start")
        self.runs.monitor.detach()
        show_error(self, error, trace)
        self._update_actions()

    def _evaluation_failed(self, run_id: str, error: Exception, trace: str) -> None:
        if self.runs.monitor.run_id == run_id:
            self.runs.monitor.append_log("error", f"Evaluation: {error}")
        show_error(self, error, trace)

    def _one_selected(self) -> dict | None:
        runs = self.runs.selected_runs()
        return runs[0] if len(runs) == 1 else None

    def rerun(self):
        run = self._one_selected()
        return self.start_run(self.store.run_config(run["id"])) if run else None

    def clone_run(self):
        run = self._one_selected()
        return self.new_run(self.store.run_config(run["id"])) if run else None

    def stop_run(self) -> None:
        if self._running():
            self.runs.monitor.attach(self.session)
            self.runs.monitor.stop_and_save()

    def resume_run(self, run_id: str | None = None):
        run = self.store.run(run_id) if run_id else self._one_selected()
        if run is None:
            return None
        return self.start_run(self.store.run_config(run["id"]), resume=run["output_dir"])

    def export_run(self):
        run = self._one_selected()
        if run is None:
            return None
        try:
            from .export_dialog import ExportDialog
        except ImportError:
            show_error(self, _user_error("Export is not part of this installation", "Update Unlearn Studio."))
            return None
        dialog = ExportDialog(self.store, run["id"], self.jobs, parent=self)
        dialog.open()
        return dialog

    def compare_runs(self) -> None:
        runs = self.runs.selected_runs()
        if len(runs) == 2:
            self.runs._compare(runs[0]["id"], runs[1]["id"])

    def combine_adapters(self):
        try:
            from .extsub_dialog import ExtSubDialog
        except ImportError:
            show_error(self, _user_error("Ext-Sub adapter arithmetic is not part of this installation",
                                         "Update Unlearn Studio."))
            return None
        dialog = ExtSubDialog(self.jobs, parent=self)
        dialog.open()
        return dialog

    def delete_run(self, *, confirm: bool = True, delete_files: bool = False) -> bool:
        """Remove the selected runs from the store after a confirmation; files only when asked."""
        runs = self.runs.selected_runs()
        if not runs or not self._writable():
            return False
        if self._running() and any(r["id"] == self.session.run_id for r in runs):
            show_error(self, _user_error("The run in progress cannot be deleted", "Stop or cancel it first."))
            return False
        if confirm:
            box = QMessageBox(QMessageBox.Icon.Question, "Delete run",
                              f"Delete {len(runs)} run{'s' if len(runs) > 1 else ''} from the project? Its metrics "
                              "and evaluation records are removed from the project store.",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
            box.setObjectName("deleteRunDialog")
            files = QCheckBox("Also delete the files on disk (adapter, checkpoints, evaluation):\n"
                              + "\n".join(r["output_dir"] or "–" for r in runs))
            box.setCheckBox(files)
            if box.exec() != QMessageBox.StandardButton.Yes:
                return False
            delete_files = files.isChecked()
        kept = []
        for run in runs:
            self.store.delete_run(run["id"])
            folder = Path(run["output_dir"] or "")
            # Only a folder the engine made (it carries the app's run marker) is ever removed.
            if delete_files and folder.is_dir() and not remove_own_folder(folder, "run"):
                kept.append(str(folder))
        if kept:
            self.statusBar().showMessage("Kept (not created by Unlearn Studio as a run folder): " + ", ".join(kept))
        self.runs.refresh()
        self.runs._selection_changed()
        self._update_actions()
        return True

    # ---- window ------------------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geometry = QSettings().value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 780)

    def closeEvent(self, event) -> None:
        """Quitting cancels a run in progress and waits for it (and every other job) to end, so the
        store and the project's files are left complete; the run can be resumed later."""
        QSettings().setValue("main_window/geometry", self.saveGeometry())
        if self._running():
            self.statusBar().showMessage("Cancelling the run in progress before quitting…")
            self.session.cancel()
        self.jobs.shut_down()
        super().closeEvent(event)


def _user_error(problem: str, fix: str):
    from unlearn_studio.core.errors import UserError

    return UserError(problem, fix)
