"""Scrolling never changes a setting by accident: the mouse wheel changes a combo box, spin box
or slider only while it has the keyboard focus (a click, or Tab, gives it). Anywhere else the
wheel scrolls what is around it, as a person scrolling down a form expects.

One filter on the application covers every window and dialog, present and future."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QSlider,
    QWidget,
)

GUARDED = (QComboBox, QAbstractSpinBox, QSlider)


def _guarded(widget: QObject) -> bool:
    return isinstance(widget, GUARDED) and not isinstance(widget, QScrollBar)


class WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Polish and _guarded(watched):
            # The default (wheel focus) would hand such a widget the focus on the first wheel turn.
            watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget):
            owner = _guarded_owner(watched)
            if owner is not None and not owner.hasFocus():
                area = _scroll_area_around(owner)
                if area is not None:
                    # Handed to the scroll area around it: the form scrolls, as if the widget were not there.
                    QApplication.sendEvent(area.viewport(), event)
                return True
        return False


def _guarded_owner(widget: QWidget) -> QWidget | None:
    """The combo box, spin box or slider ``widget`` is part of (a spin box's line edit, say)."""
    while widget is not None:
        if _guarded(widget):
            return widget
        if widget.isWindow():
            return None
        widget = widget.parentWidget()
    return None


def _scroll_area_around(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea) and not isinstance(parent, GUARDED):
            return parent
        if parent.isWindow():
            return None
        parent = parent.parentWidget()
    return None


def install(app: QApplication) -> WheelGuard:
    """Install the guard on ``app`` (once), for the widgets that exist and all that follow; returns it."""
    guard = app.findChild(WheelGuard)
    if guard is None:
        guard = WheelGuard(app)
        app.installEventFilter(guard)
        for widget in app.allWidgets():
            if _guarded(widget):
                widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return guard
