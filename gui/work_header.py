"""The head of a tab whose work runs in the background (the Evaluation and Audit tabs): a heading
beside the button that starts the work, then its progress bar beside Cancel."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget


def work_header(owner: QWidget, heading: QWidget, start: QWidget, progress: QWidget, cancel: QWidget) -> QVBoxLayout:
    """``owner``'s layout, holding the two rows; the caller adds the tab's body below them."""
    top = QHBoxLayout()
    top.addWidget(heading, 1)
    top.addWidget(start, 0, Qt.AlignmentFlag.AlignTop)
    busy = QHBoxLayout()
    busy.addWidget(progress, 1)
    busy.addWidget(cancel)
    layout = QVBoxLayout(owner)
    layout.addLayout(top)
    layout.addLayout(busy)
    return layout
