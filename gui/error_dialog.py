"""The one place where errors from workers and actions are shown to the user."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from unlearn_studio.core.errors import UserError


def show_error(parent: QWidget | None, error: Exception, trace: str = "", *, title: str = "Unlearn Studio") -> QMessageBox:
    """A non-blocking dialog: a user error shows what is wrong and what to do; any other error shows
    its type and message, with the traceback under "Show Details"."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning if isinstance(error, UserError) else QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    if isinstance(error, UserError):
        box.setText(error.problem)
        box.setInformativeText(f"What to do: {error.fix}")
    else:
        box.setText(f"{type(error).__name__}: {error}")
        box.setInformativeText("This is a bug or an unexpected condition; the details below help to report it.")
        if trace:
            box.setDetailedText(trace)
    box.setObjectName("errorDialog")
    box.open()
    return box
