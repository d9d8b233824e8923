"""Application start-up: QApplication, the project store, the main window on a project."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.paths import demo_project, resources_dir
from unlearn_studio.core.project.store import Store

from .error_dialog import show_error
from .main_window import APP_NAME, MainWindow


def create_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("Unlearn Studio")
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("unlearn-studio")
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "unlearn-studio.svg")))
    return app


def open_store(path: str | None) -> tuple[Store | None, UserError | None]:
    """The store for writing; if another process holds it, the same store read-only."""
    try:
        return Store.open(path), None
    except UserError as error:
        try:
            return Store.open(path, readonly=True), error
        except UserError:
            return None, error


def build_main_window(project: str | Path | None = None, store: str | None = None) -> MainWindow:
    opened, problem = open_store(store)
    window = MainWindow(opened)
    if problem is not None:
        show_error(window, problem)
    window.open_project(Path(project) if project else demo_project())
    return window


SCREENSHOT_TIMEOUT_MS = 120_000  # a project whose model or data never finish loading still gets its picture


def main(project: str | None = None, store: str | None = None, screenshot: str | None = None) -> int:
    """Open the app; with ``screenshot``, save the first window as a PNG once the project has
    loaded, and quit (for checking an installed bundle, and for bug reports)."""
    app = create_application()
    window = build_main_window(project, store)
    window.show()
    if screenshot is not None:
        def save_and_quit() -> None:
            window.grab().save(screenshot)
            app.quit()

        window.page.summaries_done.connect(save_and_quit)
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, save_and_quit)
    try:
        return app.exec()
    finally:
        if window.store is not None:
            window.store.close()
