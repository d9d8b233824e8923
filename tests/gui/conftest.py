"""GUI tests run offscreen, save screenshots for people to look at, and keep QSettings out of $HOME."""

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield


@pytest.fixture
def screenshot():
    """Save a widget as tests/screenshots/NAME.png (ignored by git) and return the path."""

    def save(widget, name: str) -> Path:
        from PySide6.QtWidgets import QApplication

        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # A plot's axis widens only once a paint has shown its labels are wider; a screen paints
        # again at once, so the picture kept is the second paint, after that layout.
        widget.grab()
        QApplication.processEvents()
        assert widget.grab().save(str(path)), f"could not write {path}"
        return path

    return save
