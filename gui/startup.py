"""Start-up in stages, so that the window is on screen before anything heavy loads.

The first window needs only PySide6 and a project file's TOML: it shows the project list as the
last session left it and the last project's settings. Once it has painted, three jobs run one
after another, each named in the status bar while it runs:

1. the project store (sqlite-utils imports pandas when it is installed: about a second);
2. the plotting library (pyqtgraph, numpy), the widgets built on it (the run monitor) and the
   evaluation's metric registry (scipy), whose words the runs table and the evaluation show;
3. the ML libraries (torch, transformers, peft) and the engine: seconds when warm, tens of
   seconds on a cold disk. Reading data sets and the model, comparing and exporting wait for it.

bench/bench_startup.py measures the time to the first painted window against a bare PySide6
window with as many widgets.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer, Signal

from unlearn_studio.core.errors import UserError
from unlearn_studio.gui.jobs import JobContext, Jobs, load_ml_libraries

# What each stage imports: the modules behind the widgets and jobs that wait for it.
PLOTTING = ("numpy", "pyqtgraph", "unlearn_studio.core.evaluation.table", "unlearn_studio.gui.runs_panel")
ML = ("unlearn_studio.core.project.summary", "unlearn_studio.core.run.start", "unlearn_studio.core.results.compare",
      "unlearn_studio.core.results.report")  # after torch, transformers and peft (load_ml_libraries)


def open_store(path: str | None) -> tuple[object | None, UserError | None]:
    """The store for writing; if another process holds it, the same store read-only."""
    from unlearn_studio.core.project.store import Store  # sqlite-utils (and pandas): about 1 s of start-up

    try:
        return Store.open(path), None
    except UserError as error:
        try:
            return Store.open(path, readonly=True), error
        except UserError:
            return None, error


def _import_all(modules: tuple[str, ...], ctx: JobContext) -> None:
    for number, name in enumerate(modules):  # the steps of the job's progress
        ctx.progress(number, len(modules), name.rsplit(".", 1)[-1])
        importlib.import_module(name)


class Startup(QObject):
    """Runs the stages after ``window`` has first painted; each signal fires on the GUI thread."""

    store_opened = Signal(object, object)  # the Store (or None), the problem opening it (or None)
    plots_loaded = Signal()
    ml_loaded = Signal()

    def __init__(self, jobs: Jobs, window, store_path: str | None, project: Path | None = None):
        super().__init__(window)
        self.jobs = jobs
        self.window = window
        self.store_path = store_path
        self.project = project
        self.started = False
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self.started:
            self.started = True
            self.window.removeEventFilter(self)
            QTimer.singleShot(0, self.start)  # after this paint has reached the screen
        return False

    def start(self) -> None:
        if self.project is not None:
            self.window.open_project(self.project)
        self.window.finish_building()
        path = self.store_path
        self.jobs.start(lambda ctx: open_store(path), self._store_opened, name="Opening the project store",
                        needs_ml=False)

    def _store_opened(self, opened) -> None:
        self.store_opened.emit(*opened)
        self.jobs.start(lambda ctx: _import_all(PLOTTING, ctx), self._plots_loaded,
                        name="Loading the plotting library", needs_ml=False)

    def _plots_loaded(self, _) -> None:
        self.plots_loaded.emit()
        self.jobs.start(lambda ctx: (load_ml_libraries(), _import_all(ML, ctx)), lambda _: self.ml_loaded.emit(),
                        name="Loading the ML libraries (torch, transformers, peft)", needs_ml=False)
