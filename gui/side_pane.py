"""One side of the comparison: a header saying what produced the text, the text as it streams
in, and a footer with its token count; where it stops agreeing with the other side is marked."""

from __future__ import annotations

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QFrame, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

DIFFERENCE_COLOUR = QColor("#fff1b8")  # marks where the two sides stop agreeing


class SidePane(QFrame):
    """One side: a header saying what produced the text, the streamed text, and a footer."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sidePane")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.header = QLabel()
        self.header.setObjectName("sideHeader")
        self.header.setWordWrap(True)
        font = self.header.font()
        font.setBold(True)
        self.header.setFont(font)
        self.text = QPlainTextEdit()
        self.text.setObjectName("sideText")
        self.text.setReadOnly(True)
        self.text.setPlaceholderText("The generated text appears here.")
        text_font = self.text.font()
        text_font.setPointSizeF(text_font.pointSizeF() * 1.15)
        self.text.setFont(text_font)
        self.footer = QLabel()
        self.footer.setObjectName("sideFooter")
        self.footer.setStyleSheet("color: #666")
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.footer)

    def clear(self) -> None:
        self.text.clear()
        self.footer.clear()

    def append(self, piece: str) -> None:
        if not self.text.toPlainText():
            piece = piece.lstrip()  # the continuation's leading space is not worth showing
        cursor = self.text.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        self.text.setTextCursor(cursor)

    def show_final(self, text: str, tokens: int, differs_from: int | None) -> None:
        """The exact final text; from character ``differs_from`` on it is marked as different."""
        self.text.setPlainText(text)
        if differs_from is not None and differs_from < len(text):
            cursor = self.text.textCursor()
            cursor.setPosition(differs_from)
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            marked = QTextCharFormat()
            marked.setBackground(DIFFERENCE_COLOUR)
            cursor.mergeCharFormat(marked)
        self.footer.setText(f"{tokens} new token{'s' if tokens != 1 else ''}")
