"""Application start-up: QApplication, the main window at once, then the project store and the
libraries in the background (gui/startup.py). Importing this module imports no ML library.
(The guard that keeps the mouse wheel off unfocused settings is installed by the main window,
once its first paint is on screen.)"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon, QPainter
from PySide6.QtWidgets import QApplication, QMessageBox

from unlearn_studio.core.paths import demo_project, resources_dir
from unlearn_studio.gui.error_dialog import show_error
from unlearn_studio.gui.main_window import APP_NAME, MainWindow
from unlearn_studio.gui.projects_panel import last_project
from unlearn_studio.gui.startup import Startup, open_store


def create_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("Unlearn Studio")
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("unlearn-studio")
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "unlearn-studio.svg")))
    return app


def first_project(project: str | Path | None) -> Path:
    """The project asked for, else the one open when the app last closed, else the demo."""
    if project:
        return Path(project)
    last = last_project()
    return last if last is not None and last.is_file() else demo_project()


def build_main_window(project: str | Path | None = None, store: str | None = None) -> MainWindow:
    """The window with everything loaded before it returns (for scripts and checks)."""
    opened, problem = open_store(store)
    window = MainWindow(opened)
    if problem is not None:
        show_error(window, problem)
    window.open_project(first_project(project))
    return window


def start_main_window(project: str | Path | None = None, store: str | None = None) -> MainWindow:
    """The window at once, on the project's settings; the store and the libraries follow in the
    background once it has painted (gui/startup.py)."""
    window = MainWindow(loading=True)
    path = first_project(project)
    window.show_pending_project(path)
    startup = Startup(window.jobs, window, store, path)
    startup.store_opened.connect(window.set_store)
    startup.plots_loaded.connect(window.plots_loaded)
    startup.ml_loaded.connect(window.ml_loaded)
    window.startup = startup
    return window


SCREENSHOT_TIMEOUT_MS = 120_000  # a project whose model or data never finish loading still gets its picture


def main(project: str | None = None, store: str | None = None, screenshot: str | None = None) -> int:
    """Open the app; with ``screenshot``, save the first window as a PNG once the project has
    loaded, and quit (for checking an installed bundle, and for bug reports)."""
    app = create_application()
    window = start_main_window(project, store)
    window.show()
    if screenshot is not None:
        def save_and_quit() -> None:
            picture = window.grab()
            # A refused project file shows its error in a dialog: the picture shows it on the window.
            for dialog in window.findChildren(QMessageBox, "errorDialog"):
                if dialog.isVisible():
                    shown = dialog.grab()
                    painter = QPainter(picture)
                    painter.drawPixmap((picture.width() - shown.width()) // 2,
                                       (picture.height() - shown.height()) // 2, shown)
                    painter.end()
            picture.save(screenshot)
            app.quit()

        def save_if_refused() -> None:
            # The project is read before the store opens: a refused file (its error dialog is
            # open) loads nothing more, so its picture is taken now, not after the time-out.
            if window.page.project_path is None:
                save_and_quit()

        window.summaries_done.connect(save_and_quit)
        window.store_ready.connect(save_if_refused)
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, save_and_quit)
    try:
        return app.exec()
    finally:
        window.close()  # waits for the jobs still running, so the store closes after them
        if window.store is not None:
            window.store.close()
