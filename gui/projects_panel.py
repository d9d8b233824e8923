"""The list of projects: each opens with a click; one can be removed from the list (its files stay
unless the person asks to delete its runs too).

The list as the last session left it is kept in the settings, so that the first window shows it
before the project store has opened; the store's list replaces it a moment later."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

RECENT_KEY = "projects/recent"  # [[name, path], …] as last shown
HIDDEN_KEY = "projects/hidden"  # project files removed from the list
LAST_KEY = "projects/last"  # the project open when the app last closed


@dataclass(frozen=True)
class ProjectEntry:
    name: str
    path: Path


def distinct_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``, … whichever no other project has."""
    head, _, tail = name.rpartition(" (")
    base = head if head and tail.endswith(")") and tail[:-1].isdigit() else name
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{base} ({number})"
    return candidate


def recent_projects() -> list[ProjectEntry]:
    raw = QSettings().value(RECENT_KEY) or []
    return [ProjectEntry(str(name), Path(path)) for name, path in raw if name and path]


def hidden_projects() -> set[str]:
    return set(QSettings().value(HIDDEN_KEY) or [])


def _store_setting(key: str, value) -> None:
    """Write a setting only when it changes: each write costs a file write (tens of ms)."""
    settings = QSettings()
    if settings.value(key) != value:
        settings.setValue(key, value)


def set_hidden(path: Path, hidden: bool) -> None:
    paths = hidden_projects()
    (paths.add if hidden else paths.discard)(str(path))
    _store_setting(HIDDEN_KEY, sorted(paths))


def last_project() -> Path | None:
    value = QSettings().value(LAST_KEY)
    return Path(value) if value else None


def remember_last_project(path: Path) -> None:
    _store_setting(LAST_KEY, str(path))


class RemoveProjectDialog(QMessageBox):
    """Remove a project from the list; its runs (records and the folders the app made) only on request."""

    def __init__(self, entry: ProjectEntry, runs: int, parent: QWidget | None = None):
        super().__init__(QMessageBox.Icon.Question, "Remove project",
                         f"Remove “{entry.name}” from the list of projects?", 
                         QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, parent)
        self.setObjectName("removeProjectDialog")
        self.setInformativeText(f"The project file stays where it is ({entry.path}); opening it again brings the "
                                f"project back with its {runs} run{'s' if runs != 1 else ''}.")
        self.delete_runs = QCheckBox(f"Also delete its {runs} run{'s' if runs != 1 else ''} from the project store, "
                                     "and their folders that Unlearn Studio created")
        self.delete_runs.setEnabled(runs > 0)
        self.setCheckBox(self.delete_runs)


class ProjectsPanel(QWidget):
    project_chosen = Signal(object)  # Path of the project file to open
    remove_requested = Signal(object)  # the ProjectEntry to remove from the list

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.entries: list[ProjectEntry] = []
        heading = QLabel("Projects")
        heading.setFont(QFont(heading.font().family(), -1, QFont.Weight.Bold))
        self.list = QListWidget()
        self.list.setObjectName("projectsList")
        self.list.setWordWrap(True)
        self.list.setMinimumWidth(160)  # on a small screen the splitter would squeeze names to a word a line
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setObjectName("removeProjectButton")
        self.remove_button.setToolTip("Remove the selected project from this list (its files stay unless you ask)")
        self.remove_button.clicked.connect(self._remove_current)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 0, 6)
        layout.addWidget(heading)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

    def show_entries(self, entries: list[ProjectEntry], current: Path | None = None, *, remember: bool = True) -> None:
        """List ``entries`` (hidden ones left out); ``remember`` keeps them for the next start-up."""
        hidden = hidden_projects()
        self.entries = [e for e in entries if str(e.path) not in hidden or e.path == current]
        self.list.clear()
        for entry in self.entries:  # row i is entries[i]
            item = QListWidgetItem(entry.name)
            item.setToolTip(f"{entry.name}\n{entry.path}")
            self.list.addItem(item)
            if current is not None and entry.path == current:
                self.list.setCurrentItem(item)
        self.remove_button.setEnabled(bool(self.entries))
        if remember:
            _store_setting(RECENT_KEY, [[e.name, str(e.path)] for e in self.entries])

    def names(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def finish_building(self) -> None:
        """After the first paint (Qt's enums cost it 40-60 ms): no sideways scrolling, a context menu."""
        from PySide6.QtCore import Qt

        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)

    def _activated(self, item: QListWidgetItem) -> None:
        entry = self._entry(item)
        if entry is not None:
            self.project_chosen.emit(entry.path)

    def _entry(self, item: QListWidgetItem | None) -> ProjectEntry | None:
        row = self.list.row(item) if item is not None else -1
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _remove_current(self) -> None:
        entry = self._entry(self.list.currentItem())
        if entry is not None:
            self.remove_requested.emit(entry)

    def _menu(self, position) -> None:
        entry = self._entry(self.list.itemAt(position))
        if entry is None:
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.project_chosen.emit(entry.path))
        menu.addAction("Remove from the list…", lambda: self.remove_requested.emit(entry))
        menu.exec(self.list.viewport().mapToGlobal(position))
