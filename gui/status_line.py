"""A dialog's one-line status: what is happening, or (in red) what went wrong and what to do."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from unlearn_studio.core.errors import UserError
from unlearn_studio.gui.error_dialog import show_error


class StatusLine(QLabel):
    def __init__(self, object_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def say(self, message: str, problem: bool = False) -> None:
        self.setStyleSheet("color: #b42318" if problem else "")
        self.setText(message)

    def refuse(self, error: UserError) -> None:
        """Bad input before any work: the problem and its fix here, and in the one error dialog."""
        self.say(f"{error.problem}. {error.fix}", problem=True)
        show_error(self.window(), error)
