"""The one place where errors from workers and actions are shown to the user: a dialog, and the
app's log (the Activity panel), so that a dialog closed in a hurry is still readable later."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QMessageBox, QWidget

from unlearn_studio.core.errors import UserError

log = logging.getLogger("unlearn_studio.gui")


def show_error(parent: QWidget | None, error: Exception, trace: str = "", *, title: str = "Unlearn Studio",
               context: str = "") -> QMessageBox:
    """A non-blocking dialog: a user error shows what is wrong and what to do; any other error shows
    its type and message, with the traceback under "Show Details". ``context`` says what was
    being done (a job's name); the log gets the same text."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning if isinstance(error, UserError) else QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    where = f"{context}: " if context else ""
    if isinstance(error, UserError):
        box.setText(error.problem)
        box.setInformativeText(f"What to do: {error.fix}")
        log.warning("%s%s. What to do: %s", where, error.problem, error.fix)
    else:
        box.setText(f"{type(error).__name__}: {error}")
        box.setInformativeText("This is a bug or an unexpected condition; the details below help to report it.")
        if trace:
            box.setDetailedText(trace)
        log.error("%s%s: %s%s", where, type(error).__name__, error, f"\n{trace.rstrip()}" if trace else "")
    box.setObjectName("errorDialog")
    box.open()
    return box
