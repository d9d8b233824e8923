"""The main window: the projects; the open project's page (runs with the live monitor, evaluation
and comparison; data sets; model; config); the run actions; the Activity panel with everything
that runs in the background and the app's log.

The window can open before anything heavy has loaded (gui/startup.py): its first paint shows the
project list and the name of the project being opened, and needs neither the project page nor
Qt's enum namespace (importing ``Qt`` alone takes 40-60 ms here; bench/bench_startup.py).
``finish_building`` (the page, the run actions, the Activity panel), ``set_store``,
``plots_loaded`` and ``ml_loaded`` fill it in as they arrive. Given a store, it is complete at
once (the tests, and a second window).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from unlearn_studio.core.errors import UserError
from unlearn_studio.gui import collector
from unlearn_studio.gui.error_dialog import show_error
from unlearn_studio.gui.jobs import Jobs
from unlearn_studio.gui.projects_panel import (
    ProjectEntry,
    ProjectsPanel,
    RemoveProjectDialog,
    hidden_projects,
    recent_projects,
    remember_last_project,
    set_hidden,
)

APP_NAME = "Unlearn Studio"
DEFAULT_SIZE = (1200, 780)
SCREEN_MARGIN = 40


class PendingProject(QWidget):
    """What the first paint shows where the project page goes: the name of the project being read."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel()
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addStretch(1)


class MainWindow(QMainWindow):
    run_started = Signal(object)  # the RunSession of a run just started
    store_ready = Signal()  # the project store is open (or could not be)
    runs_ready = Signal()  # the runs panel is in place
    summaries_done = Signal()  # the open project's data sets and model have been read

    def __init__(self, store=None, *, loading: bool = False, parent: QWidget | None = None):
        """``loading``: the page, the store and the libraries arrive later (``finish_building``,
        ``set_store``, ``plots_loaded``, ``ml_loaded``); otherwise ``store`` is used at once and
        the libraries load as they are needed."""
        super().__init__(parent)
        collector.install(QApplication.instance())  # before the first job thread starts
        self.store = None
        self.jobs = Jobs(self)
        # Made by finish_building: the page, the queue and the run manager, the actions, the Activity panel.
        self.page = self.queue = self.manager = self.menu_actions = self.activity = None
        self.project_id: int | None = None
        self.runs = None  # the RunsPanel, once the plotting library has loaded
        self.ml_ready = False
        self._offered = False  # the run the last session left unfinished has been looked for
        self.sweep = None  # the sweep in progress (gui/sweep_view.py), if any
        self.setWindowTitle(APP_NAME)

        self.projects = ProjectsPanel()
        self.projects.project_chosen.connect(self._project_chosen)
        self.projects.remove_requested.connect(self.remove_project)
        self.pending = PendingProject()
        self.splitter = QSplitter()
        self.splitter.addWidget(self.projects)
        self.splitter.addWidget(self.pending)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([200, 900])
        self.setCentralWidget(self.splitter)
        self._restore_geometry()
        if loading:
            self.projects.show_entries(recent_projects(), remember=False)
            self.statusBar().showMessage("Opening the project store…")
        else:
            self.finish_building()
            self.set_store(store)
            self.plots_loaded()
            self.ml_loaded()

    def show_pending_project(self, path: Path) -> None:
        """Before the project file is read: its name as the last session listed it (or the file's)."""
        path = Path(path).resolve()
        name = next((e.name for e in recent_projects() if e.path == path), path.stem)
        self.pending.title.setText(name)
        self.pending.subtitle.setText(f"Reading {path.name}…")
        self.setWindowTitle(f"{name} — {APP_NAME}")

    def finish_building(self) -> None:
        """What the first paint does without: the project page, the queue and the run actions, the
        Activity panel, and the guard that keeps the mouse wheel off unfocused settings."""
        if self.page is not None:
            return
        # Imported here, after the first paint: these modules, Qt's enums and the engine's events
        # and files behind them cost a tenth of a second (bench/bench_startup.py).
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QDockWidget

        from unlearn_studio.gui import wheel_guard
        from unlearn_studio.gui.activity import ActivityIndicator, ActivityPanel
        from unlearn_studio.gui.project_page import ProjectPage
        from unlearn_studio.gui.run_manager import RunManager
        from unlearn_studio.gui.run_queue import RunQueue
        from unlearn_studio.gui.window_actions import WindowActions

        self.page = ProjectPage(self.jobs)
        self.page.summaries_done.connect(self.summaries_done)
        self.splitter.replaceWidget(1, self.page)
        self.pending.deleteLater()
        self.projects.finish_building()
        wheel_guard.install(QApplication.instance())
        self.activity = ActivityPanel(self.jobs)
        self.activity_dock = QDockWidget("Activity", self)
        self.activity_dock.setObjectName("activityDock")
        self.activity_dock.setWidget(self.activity)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.activity_dock)
        self.activity_dock.hide()
        self.indicator = ActivityIndicator(self.jobs)
        self.indicator.open_requested.connect(lambda: self.activity_dock.setVisible(not self.activity_dock.isVisible()))
        self.statusBar().addPermanentWidget(self.indicator)
        self.queue = RunQueue(self)
        self.manager = RunManager(self)
        self.manager.run_started.connect(self.run_started)
        self.manager.changed.connect(self.update_actions)
        self.menu_actions = WindowActions(self)
        self.update_actions()

    # ---- what arrives after the window -------------------------------------------------------------

    def set_store(self, store, problem: Exception | None = None) -> None:
        self.store = store
        if problem is not None:
            show_error(self, problem)
        self.statusBar().showMessage(f"Project store: {store.path}" + (" (read-only)" if store.readonly else "")
                                     if store is not None else "No project store is open")
        if self.page.project_path is not None:
            self.project_id = self._project_id(self.page.project_path, self.page.config)
        self._refresh_projects()
        if self.runs is not None:
            self.runs.show_project(self.store, self.project_id)
        self.update_actions()
        self._offer_last_session()
        self.store_ready.emit()

    def plots_loaded(self) -> None:
        """The plotting library is loaded: the runs panel (monitor, evaluation) takes its tab."""
        if self.runs is not None:
            return
        from unlearn_studio.gui.runs_panel import RunsPanel  # pyqtgraph: loaded after the first window

        self.finish_building()
        self.runs = RunsPanel(self.jobs, self.queue)
        self.runs.selection_changed.connect(self.update_actions)
        self.runs.monitor.resume_requested.connect(self.manager.resume_run)
        self.page.set_runs_panel(self.runs)
        if self.store is not None:
            self.runs.show_project(self.store, self.project_id)
        self.update_actions()
        self.runs_ready.emit()

    def ml_loaded(self) -> None:
        """The ML libraries are loaded: data and model are read, Compare, Export and sweeps open."""
        self.ml_ready = True
        self.page.read_files()
        if self.runs is not None:
            self.runs.enable_compare()
        self.update_actions()
        self._offer_last_session()

    def _offer_last_session(self) -> None:
        """Once both the store and the ML libraries (which reading checkpoints needs) are there."""
        if self.store is not None and self.ml_ready and not self._offered:
            self._offered = True
            self.manager.offer_last_session()

    def update_actions(self) -> None:
        if self.menu_actions is not None:
            self.menu_actions.update()

    # ---- projects ----------------------------------------------------------------------------------

    def _project_id(self, path: Path, config) -> int | None:
        if self.store is None:
            return None
        if not self.store.readonly:
            return self.store.ensure_project(config.name, path)
        return next((p["id"] for p in self.store.projects() if Path(p["path"]) == path), None)

    def open_project(self, path: Path) -> bool:
        """Load a project file and show it; a bad file gets the error dialog and changes nothing."""
        # The config's module (and the data layer behind it) loads after the first window: ~60 ms.
        from unlearn_studio.core.project.config import RunConfig

        self.finish_building()
        path = Path(path).resolve()
        try:
            config = RunConfig.load(path)
        except Exception as error:  # UserError for bad files; anything else is shown with its traceback
            show_error(self, error)
            return False
        if str(path) in hidden_projects():
            set_hidden(path, False)  # opened on purpose: back on the list
        self.project_id = self._project_id(path, config)
        self.setWindowTitle(f"{config.name} — {APP_NAME}")
        self.page.show_project(path, config, read_files=self.ml_ready)
        if self.runs is not None:
            self.runs.show_project(self.store, self.project_id)
        self._refresh_projects()
        remember_last_project(path)
        self.update_actions()
        return True

    def reload(self) -> None:
        if self.page.project_path:
            self.open_project(self.page.project_path)

    def _refresh_projects(self) -> None:
        current = self.page.project_path if self.page is not None else None
        if self.store is None:
            self.projects.show_entries(recent_projects(), current, remember=False)
            return
        entries = [ProjectEntry(p["name"], Path(p["path"])) for p in self.store.projects() if p["path"]]
        self.projects.show_entries(entries, current)

    def _project_chosen(self, path: Path) -> None:
        if self.page is None or path != self.page.project_path:
            self.open_project(path)

    def choose_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", "", "Project files (*.toml)")
        if path:
            self.open_project(Path(path))

    def remove_open_project(self) -> None:
        if self.page.project_path is not None and self.page.config is not None:
            self.remove_project(ProjectEntry(self.page.config.name, self.page.project_path))

    def remove_project(self, entry: ProjectEntry, *, confirm: bool = True, delete_runs: bool = False) -> bool:
        """Take a project off the list; its runs (records and the folders the app made) only on request."""
        runs = []
        if self.store is not None:
            ids = [p["id"] for p in self.store.projects() if p["path"] and Path(p["path"]) == entry.path]
            runs = [run for pid in ids for run in self.store.runs(pid)]
        live = self.manager.session.run_id if self.manager.running() else None
        if live in {run["id"] for run in runs}:
            show_error(self, UserError("The project has a run in progress", "Stop or cancel the run first."))
            return False
        if confirm:
            dialog = RemoveProjectDialog(entry, len(runs), self)
            if dialog.exec() != RemoveProjectDialog.StandardButton.Yes:
                return False
            delete_runs = dialog.delete_runs.isChecked()
        if delete_runs and runs and self.manager.writable():
            kept = self.manager.delete_runs(runs, delete_files=True)
            if kept:
                self.statusBar().showMessage("Kept (not created by Unlearn Studio as a run folder): " + ", ".join(kept))
        set_hidden(entry.path, True)
        if entry.path == self.page.project_path:
            remaining = [e for e in self.projects.entries if e.path != entry.path]
            if remaining:
                self.open_project(remaining[0].path)
        self._refresh_projects()
        return True

    # ---- sweeps ------------------------------------------------------------------------------------

    def start_sweep(self):
        from unlearn_studio.gui.sweep_dialog import SweepDialog  # reads the methods' settings (torch): after it loads

        if self.page.config is None:
            return None
        dialog = SweepDialog(self.page.config, parent=self)
        dialog.accepted.connect(lambda: self._sweep_accepted(dialog))
        dialog.open()
        return dialog

    def _sweep_accepted(self, dialog) -> None:
        from unlearn_studio.gui.sweep_view import Sweep  # its frontier plot is pyqtgraph's: after the first window

        self.sweep = Sweep(self, dialog.config, dialog.points, self.page.project_path)
        self.sweep.finished.connect(self._sweep_finished)
        self.sweep.start()
        self.update_actions()

    def _sweep_finished(self) -> None:
        self.sweep = None
        self.update_actions()

    # ---- window ------------------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geometry = QSettings().value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
            return
        room = self.screen().availableGeometry()
        self.resize(min(DEFAULT_SIZE[0], room.width() - SCREEN_MARGIN), min(DEFAULT_SIZE[1], room.height() - SCREEN_MARGIN))

    def closeEvent(self, event) -> None:
        """Quitting cancels a run in progress and waits for it (and every other job) to end, so the
        store and the project's files are left complete; the run can be resumed later."""
        QSettings().setValue("main_window/geometry", self.saveGeometry())
        if self.manager is not None and self.manager.running():
            self.statusBar().showMessage("Cancelling the run in progress before quitting…")
            self.queue.clear()
            self.manager.session.cancel()
        self.jobs.shut_down()
        if self.activity is not None:
            self.activity.detach_log()
        super().closeEvent(event)

    # ---- the run in progress and starting one (the run manager's, for scripts and tests) ----------

    @property
    def session(self):
        return self.manager.session if self.manager is not None else None

    def start_run(self, config, resume=None):
        return self.manager.start_run(config, resume)
