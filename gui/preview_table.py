"""The first rows of a data set as a table: one column per field, long cells cut to a readable
width (the whole text on hover). The project page and the wizard's data page both show it."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QWidget

MAX_COLUMN_WIDTH = 340


class PreviewTable(QTableWidget):
    def __init__(self, object_name: str = "previewTable", parent: QWidget | None = None):
        super().__init__(0, 0, parent)
        self.setObjectName(object_name)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(False)
        self.horizontalHeader().setStretchLastSection(True)

    def show_rows(self, rows: list[dict[str, str]]) -> None:
        """Columns in the order they first appear; an empty list clears the table."""
        columns = list(dict.fromkeys(key for row in rows for key in row))
        self.clear()
        self.setColumnCount(len(columns))
        self.setRowCount(len(rows))
        self.setHorizontalHeaderLabels(columns)
        for r, row in enumerate(rows):
            for c, column in enumerate(columns):
                text = row.get(column, "")
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.setItem(r, c, item)
        self.resizeColumnsToContents()
        for c in range(len(columns)):
            self.setColumnWidth(c, min(self.columnWidth(c), MAX_COLUMN_WIDTH))

    def column_names(self) -> list[str]:
        return [self.horizontalHeaderItem(c).text() for c in range(self.columnCount())]
