"""The main window's actions, its menus and its toolbar, and which actions the current state allows."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

ML_NOTE = " (once the ML libraries have loaded)"


class WindowActions:
    def __init__(self, window):
        self.window = window
        w = window
        self.open = self._action("&Open project…", w.choose_project, QKeySequence.StandardKey.Open,
                                 "Open a project file (.toml)")
        self.reload = self._action("&Reload project", w.reload, QKeySequence.StandardKey.Refresh,
                                   "Read the project file again")
        self.remove_project = self._action("Re&move project from the list…", w.remove_open_project, None,
                                           "Take the open project off the list (its files stay)")
        self.quit = self._action("&Quit", w.close, QKeySequence.StandardKey.Quit)
        self.new_run = self._action("&New run…", "new_run", QKeySequence.StandardKey.New,
                                    "Set up and start a run: model, method, data, review")
        self.rerun = self._action("&Re-run", "rerun", None, "Start the selected run again with its settings")
        self.clone = self._action("&Clone…", "clone_run", None, "Set up a new project from the selected run's settings")
        self.sweep = self._action("S&weep…", w.start_sweep, None,
                                  "Run the project over a grid of settings and watch the frontier fill in")
        self.stop = self._action("&Stop && save", "stop_run", None,
                                 "End the run in progress after this step, keeping its adapter")
        self.resume = self._action("Res&ume", "resume_run", None, "Continue an interrupted run from its last checkpoint")
        self.export = self._action("&Export…", "export_run", None, "Export the selected run's adapter")
        self.delete = self._action("&Delete run…", "delete_run", QKeySequence.StandardKey.Delete,
                                   "Remove the selected run from the project (its files are kept unless asked)")
        self.compare = self._action("Com&pare two runs", "compare_runs", None, "Compare the two selected runs side by side")
        self.combine = self._action("Combine adapters (E&xt-Sub)…", "combine_adapters", None,
                                    "Subtract an anti-expert adapter's deficiency from an expert adapter")
        self.activity = w.activity_dock.toggleViewAction()
        self.activity.setText("&Activity and log")

        menus = w.menuBar()
        for title, actions in (("&File", (self.open, self.reload, self.remove_project, None, self.quit)),
                               ("&Run", (self.new_run, self.rerun, self.clone, self.sweep, None, self.stop, self.resume,
                                         None, self.export, self.compare, None, self.delete)),
                               ("&Tools", (self.combine,)), ("&View", (self.activity,))):
            menu = menus.addMenu(title)
            for action in actions:
                menu.addSeparator() if action is None else menu.addAction(action)
        toolbar = w.addToolBar("Project")
        toolbar.setObjectName("projectToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.open, None, self.new_run, self.rerun, self.clone, self.sweep, self.stop, self.resume, None,
                       self.export, self.compare, self.delete):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        """``slot``: a callable, or the name of the run manager's method (looked up when triggered)."""
        action = QAction(text, self.window)
        if shortcut is not None:
            action.setShortcut(shortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        if isinstance(slot, str):
            action.triggered.connect(lambda *_: getattr(self.window.manager, slot)())
        else:
            action.triggered.connect(lambda *_: slot())
        return action

    def update(self) -> None:
        """Enable what the store, the selection, the run in progress and the loaded libraries allow."""
        w = self.window
        m = w.manager
        runs = w.runs.selected_runs() if w.runs is not None else []
        one = runs[0] if len(runs) == 1 else None
        writable, running = m.writable(), m.running()
        ready = writable and w.runs is not None and w.page.config is not None
        ml = w.ml_ready
        self.new_run.setEnabled(ready)
        self.rerun.setEnabled(ready and one is not None)
        self.clone.setEnabled(ready and one is not None)
        self.sweep.setEnabled(ready and ml and w.sweep is None)
        self.stop.setEnabled(running)
        info = w.runs.info if w.runs is not None else None
        self.resume.setEnabled(ready and not running and one is not None and info is not None
                               and info.run_id == one["id"] and info.resumable)
        self.export.setEnabled(ml and one is not None and one["status"] in ("finished", "stopped"))
        self.compare.setEnabled(ml and len(runs) == 2)
        self.combine.setEnabled(ready and ml and w.project_id is not None)
        live = m.session.run_id if running else None
        self.delete.setEnabled(writable and bool(runs) and live not in {r["id"] for r in runs})
        self.remove_project.setEnabled(w.page.project_path is not None)
        for action in (self.export, self.compare, self.sweep, self.combine):
            action.setToolTip(action.statusTip() + ("" if ml else ML_NOTE))
