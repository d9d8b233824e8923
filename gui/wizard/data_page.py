"""Wizard page 3, the data: one tab per role the chosen method needs (and the evaluation roles),
each with a file picker, the detected format, a column mapping, a preview, the first tokenized
batch decoded back and the bad rows. Next stays disabled until every required role is valid."""

from __future__ import annotations

import copy

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from unlearn_studio.core.data.columns import REQUIRED
from unlearn_studio.core.data.formats import FORMATS
from unlearn_studio.core.data.roles import ROLES
from unlearn_studio.core.data.templates import TEMPLATES
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import DataSource
from unlearn_studio.gui.jobs import LOG, JobSlot
from unlearn_studio.gui.preview_table import PreviewTable
from unlearn_studio.gui.wizard.fields import DEBOUNCE_MS

EVALUATION_ROLES = ("holdout", "general")  # offered with every method: the evaluation uses them
AUTO = "(detected)"
DATA_FILES = "Data files (*.jsonl *.json *.csv *.tsv *.parquet *.txt);;All files (*)"


def _preview(config, role):
    # The preview tokenizes with the model's tokenizer (transformers): on a worker, when asked.
    from unlearn_studio.core.project.preview import preview_role
    from unlearn_studio.core.project.template_check import check_role

    return preview_role(config, role), check_role(config, role)


class RoleEditor(QWidget):
    """One role: where its file is, how it is read, and what training will see."""

    checked = Signal(str)  # role: a preview (or a problem) arrived

    def __init__(self, page: DataPage, role: str, required: bool, why: str):
        super().__init__()
        self.page, self.role, self.required = page, role, required
        self.preview = None
        self.path = QLineEdit()
        self.path.setPlaceholderText("a data file, or demo:NAME for the built-in demo data"
                                     + ("" if required else " (optional: leave empty to skip)"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.format = QComboBox()
        self.format.addItems(["auto", *FORMATS])
        self.format.setToolTip("\n".join(f"{k}: {v}" for k, v in FORMATS.items()))
        self.template = QComboBox()
        self.template.addItems(list(TEMPLATES))
        self.template.setToolTip("\n".join(f"{k}: {v}" for k, v in TEMPLATES.items()))
        kinds = ROLES[role].kinds
        # The columns a role needs can be mapped here; optional ones (paraphrases, wrong answers) are detected.
        self.canonical = list(dict.fromkeys(c for kind in kinds for c in REQUIRED[kind]))
        self.columns: dict[str, QComboBox] = {}
        for name in self.canonical:
            combo = QComboBox()
            combo.addItem(AUTO)
            combo.setToolTip(f"the file's column that holds {name}")
            self.columns[name] = combo

        about = QLabel(f"<b>{role}</b>: {ROLES[role].description}. {why}")
        about.setWordWrap(True)
        self.status = QLabel("No file chosen.")
        self.status.setObjectName(f"status_{role}")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.advice = None  # core's advice on the template, when it misfits
        self.fix = QPushButton()
        self.fix.setObjectName(f"templateFix_{role}")
        self.fix.hide()
        self.fix.clicked.connect(lambda: self.advice is not None and self.template.setCurrentText(self.advice.template))

        self.table = PreviewTable(f"preview_{role}")
        self.batch = QPlainTextEdit()
        self.batch.setReadOnly(True)
        self.batch.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.batch.setPlaceholderText("The first batch, tokenized and decoded back, appears here.")
        self.errors = QListWidget()
        self.errors.setObjectName(f"errors_{role}")
        self.details = QTabWidget()
        self.details.addTab(self.table, "Preview")
        self.details.addTab(self.batch, "First batch, decoded")
        self.details.addTab(self.errors, "Row errors")

        file_row = QHBoxLayout()
        file_row.addWidget(QLabel("File:"))
        file_row.addWidget(self.path, 1)
        file_row.addWidget(browse)
        read_row = QHBoxLayout()
        read_row.addWidget(QLabel("Format:"))
        read_row.addWidget(self.format)
        read_row.addSpacing(12)
        read_row.addWidget(QLabel("Template:"))
        read_row.addWidget(self.template)
        read_row.addStretch(1)
        # The column mapping has a row of its own: beside the format it made the page wider than a
        # 1024-pixel screen.
        columns_row = QHBoxLayout()
        columns_row.addWidget(QLabel("Columns:"))
        for name, combo in self.columns.items():
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
            columns_row.addWidget(QLabel(f"{name}"))
            columns_row.addWidget(combo)
        columns_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(file_row)
        layout.addLayout(read_row)
        layout.addLayout(columns_row)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.fix, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(status_row)
        layout.addWidget(self.details, 1)

        self.job = JobSlot(page.owner.jobs, debounce_ms=DEBOUNCE_MS, parent=self)  # the newest settings' preview wins
        self.path.textChanged.connect(self._changed)
        self.format.currentTextChanged.connect(self._changed)
        self.template.currentTextChanged.connect(self._changed)
        for combo in self.columns.values():
            combo.currentTextChanged.connect(self._changed)
        self._loading = False

    # ---- state -------------------------------------------------------------------------------------

    def load(self, source: DataSource | None) -> None:
        self._loading = True
        self.path.setText(source.path if source else "")
        self.format.setCurrentText(source.format if source else "auto")
        self.template.setCurrentText(source.template if source else "auto")
        for name, combo in self.columns.items():
            mapped = (source.columns or {}).get(name) if source else None
            if mapped and combo.findText(mapped) < 0:
                combo.addItem(mapped)
            combo.setCurrentText(mapped or AUTO)
        self._loading = False
        self._changed(now=True)

    def source(self) -> DataSource | None:
        path = self.path.text().strip()
        if not path:
            return None
        columns = {name: combo.currentText() for name, combo in self.columns.items() if combo.currentText() != AUTO}
        return DataSource(path=path, format=self.format.currentText(), columns=columns,
                          template=self.template.currentText())

    @property
    def valid(self) -> bool:
        if self.job.pending:
            return False
        if self.source() is None:
            return not self.required
        return self.preview is not None and self.preview.valid

    def _browse(self) -> None:
        start = str(self.page.owner.draft.base_dir or "")
        path, _ = QFileDialog.getOpenFileName(self, f"Data for the {self.role} role", start, DATA_FILES)
        if path:
            self.path.setText(path)

    def _changed(self, *_, now: bool = False) -> None:
        if self._loading:
            return
        self.page.store_role(self.role, self.source())
        self.preview, self.advice = None, None
        self.fix.hide()
        source = self.source()
        if source is None:
            self.status.setText("Not used." if not self.required else "Choose the file for this role.")
            self.status.setStyleSheet("" if not self.required else "color: #b3261e")
            self._fill(None)
            self.job.cancel()
            self.checked.emit(self.role)
            return
        self.status.setText("Reading…")
        self.status.setStyleSheet("")
        config = copy.deepcopy(self.page.owner.draft)
        self.job.start(lambda ctx: _preview(config, self.role), self._show, self._show_failure, now=now,
                       name=f"Reading the {self.role} data", errors=LOG)
        self.checked.emit(self.role)

    # ---- showing -----------------------------------------------------------------------------------

    def _show(self, found) -> None:
        preview, advice = found
        self.preview, self.advice = preview, advice
        self.fix.setVisible(advice is not None)
        if preview.error is not None:
            self.status.setText(f"✗ {preview.error}")
            self.status.setStyleSheet("color: #b3261e")
        else:
            mapping = ", ".join(c if c == s else f"{c} ← {s}" for c, s in preview.columns_used.items())
            text = (f"{preview.format} · {preview.kind} rows · {preview.rows:,} usable of {preview.rows_read:,} · "
                    f"columns {mapping} · template {preview.template or '–'}")
            if preview.bad_rows:
                text = f"✗ {preview.bad_rows} bad row(s): a run refuses the file until they are fixed. " + text
            else:
                text = "✓ " + text
            # A template that misfits is said once, in the app's words, with its fix beside it.
            notes = preview.warnings + ([preview.batch_note] if preview.batch_note and advice is None else [])
            if notes:
                text += "\nNote: " + "\nNote: ".join(notes)
            colour = "#1b7f3b"
            if advice is not None:
                text = text.replace("✓ ", "⚠ ", 1) + f"\n⚠ {advice.title}. {advice.detail}"
                self.fix.setText(f"Use the {advice.template} template")
                colour = "#8a6d00"
            self.status.setText(text)
            self.status.setStyleSheet("color: #b3261e" if preview.bad_rows else f"color: {colour}")
            self._offer_columns(preview.columns_present)
        self._fill(preview)
        self.checked.emit(self.role)

    def _show_failure(self, error: Exception, trace: str) -> None:
        from unlearn_studio.core.project.preview import RolePreview  # transformers behind it; loaded by _preview

        source = self.source()
        self._show((RolePreview(self.role, source.path if source else "",
                                error=error if isinstance(error, UserError) else UserError(str(error), trace[-400:])),
                    None))

    def _offer_columns(self, present: list[str]) -> None:
        for combo in self.columns.values():
            chosen = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([AUTO, *present])
            combo.setCurrentText(chosen if chosen in present else AUTO)
            combo.blockSignals(False)

    def _fill(self, preview) -> None:
        self.table.show_rows(preview.preview if preview is not None else [])
        batch = preview.batch if preview is not None else []
        self.batch.setPlainText("\n\n".join(
            f"[{e.origin}] {e.n_tokens} tokens, {e.n_trained} trained («…» = the tokens the loss covers)\n{e.text}"
            for e in batch) or (preview.batch_note if preview is not None else ""))
        self.errors.clear()
        errors = preview.row_errors if preview is not None else []
        for error in errors:
            self.errors.addItem(error)
            self.errors.item(self.errors.count() - 1).setForeground(Qt.GlobalColor.darkRed)
        self.details.setTabText(2, f"Row errors ({len(errors)})" if errors else "Row errors (none)")
        if errors:
            self.details.setCurrentIndex(2)


class DataPage(QWizardPage):
    all_checked = Signal()  # every role's preview for the current settings is shown

    def __init__(self, wizard):
        super().__init__()
        self.owner = wizard
        self.setTitle("Data")
        self.editors: dict[str, RoleEditor] = {}
        self.tabs = QTabWidget()
        self.tabs.setObjectName("roleTabs")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)

    def initializePage(self) -> None:
        cls = self.owner.method_class()
        required = list(cls.roles.required)
        optional = [r for r in cls.roles.optional if r not in required]
        extra = [r for r in (*EVALUATION_ROLES, *self.owner.draft.data)
                 if r not in required and r not in optional]
        self.setSubTitle(f"{cls.title} needs: {', '.join(required) or 'no data'}"
                         + (f"; it can also use {', '.join(optional)}" if optional else "")
                         + ". The evaluation also reads holdout and general data when they are given.")
        self.tabs.clear()
        for editor in self.editors.values():
            editor.deleteLater()
        self.editors = {}
        for role in (*required, *optional, *dict.fromkeys(extra)):
            why = (f"Required by {cls.title}." if role in required else
                   f"Optional for {cls.title}." if role in optional else "Optional: used by the evaluation.")
            editor = RoleEditor(self, role, role in required, why)
            editor.checked.connect(self._role_checked)
            self.editors[role] = editor
            self.tabs.addTab(editor, role)
        # Roles the method does not use and the evaluation does not read are dropped from the draft.
        for role in list(self.owner.draft.data):
            if role not in self.editors:
                del self.owner.draft.data[role]
        for role, editor in self.editors.items():
            editor.load(self.owner.draft.data.get(role))

    def store_role(self, role: str, source: DataSource | None) -> None:
        if source is None:
            self.owner.draft.data.pop(role, None)
        else:
            self.owner.draft.data[role] = source

    def _role_checked(self, role: str) -> None:
        editor = self.editors.get(role)
        if editor is None:
            return
        index = self.tabs.indexOf(editor)
        if editor.job.pending:
            mark = " …"
        elif editor.source() is None:
            mark = " ✗" if editor.required else " (not used)"
        elif not editor.valid:
            mark = " ✗"
        else:
            mark = " ⚠" if editor.advice is not None else " ✓"
        self.tabs.setTabText(index, role + mark)
        self.tabs.tabBar().setTabTextColor(index, Qt.GlobalColor.darkRed if mark == " ✗" else Qt.GlobalColor.black)
        self.completeChanged.emit()
        if not any(e.job.pending for e in self.editors.values()):
            self.all_checked.emit()

    def isComplete(self) -> bool:
        return bool(self.editors) and all(editor.valid for editor in self.editors.values())

    def set_template(self, role: str, template: str) -> None:
        """Write ``role``'s rows with ``template`` (the review page's one-click fix)."""
        editor = self.editors.get(role)
        if editor is not None:
            editor.template.setCurrentText(template)  # its change stores the role in the draft
        elif role in self.owner.draft.data:
            self.owner.draft.data[role].template = template
