"""Wizard page 2, the method: every registered method with its one-line summary and paper; a form
built from its declared hyperparameters and the run settings, with presets and a simple/advanced
toggle; the equivalent project TOML and command line, copyable."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.presets import PRESETS, apply_preset, matching_preset, shipped_data
from unlearn_studio.gui.wizard.fields import SETTINGS, Field, hyperparameter_field, setting_field

CUSTOM = "Custom"  # the preset combo's text when the settings are no preset's
NAME_ROLE = Qt.ItemDataRole.UserRole


def _copy_button(source: QPlainTextEdit | QLabel, text: str = "Copy") -> QPushButton:
    button = QPushButton(text)
    button.clicked.connect(lambda: QGuiApplication.clipboard().setText(
        source.toPlainText() if isinstance(source, QPlainTextEdit) else source.text()))
    return button


class MethodList(QListWidget):
    """The methods, each with its description wrapped whole: Qt sizes wrapped list items for a width
    of its own choosing, which cut the longer descriptions (ELM's) short; here each item is as tall
    as its text at the list's width, measured again when the width changes."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("methodList")
        self.setWordWrap(True)
        self.setSpacing(2)
        self.setMinimumWidth(250)
        self.setResizeMode(QListView.ResizeMode.Adjust)

    def fit_items(self) -> None:
        width = self.viewport().width() - 2 * self.spacing() - 8
        metrics = self.fontMetrics()
        for row in range(self.count()):
            item = self.item(row)
            text = metrics.boundingRect(0, 0, width, 100_000, int(Qt.TextFlag.TextWordWrap), item.text())
            item.setSizeHint(QSize(width, text.height() + 6))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_items()


class MethodPage(QWizardPage):
    methods_shown = Signal()

    def __init__(self, wizard):
        super().__init__()
        self.owner = wizard
        self.setTitle("Method")
        self.setSubTitle("How to unlearn. Each method needs its own data roles (next page); hover a "
                         "setting to see what it does and where its default comes from.")
        self.fields: dict[str, tuple[Field, object]] = {}  # key -> (field, Hyperparameter or Setting)
        self.method_cls = None

        self.list = MethodList()
        self.list.addItem("Loading the methods…")
        self.list.currentItemChanged.connect(self._method_selected)

        self.title = QLabel()
        title_font = self.title.font()
        title_font.setBold(True)
        title_font.setPointSizeF(title_font.pointSizeF() * 1.2)
        self.title.setFont(title_font)
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.about.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preset = QComboBox()
        self.preset.setObjectName("presetCombo")
        for key, text in PRESETS.items():
            self.preset.addItem(text, key)
        self.preset.addItem(CUSTOM, None)
        self.preset.setToolTip("A whole recipe: the method's settings, LoRA, training, and the data it was made for. "
                               "“Custom” means the settings are none of the presets'.")
        self.preset.activated.connect(lambda _: self.preset.currentData() and self.apply_preset(self.preset.currentData()))
        self.preset_note = QLabel()
        self.preset_note.setWordWrap(True)
        self.preset_note.setStyleSheet("color: #555")
        self.advanced = QCheckBox("Show advanced settings")
        self.advanced.setObjectName("advancedToggle")
        self.advanced.toggled.connect(lambda _: self._build_form() if self.method_cls is not None else None)

        self.params_box = QGroupBox("Hyperparameters")
        self.params_form = QFormLayout(self.params_box)
        self.settings_box = QGroupBox("Training")
        self.settings_form = QFormLayout(self.settings_box)
        for form in (self.params_form, self.settings_form):
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form_widget = self.form_widget = QWidget()
        form_layout = QVBoxLayout(form_widget)
        form_layout.addWidget(self.params_box)
        form_layout.addWidget(self.settings_box)
        form_layout.addStretch(1)
        scroll = self.scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(form_widget)

        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Preset:"))
        preset_row.addWidget(self.preset)
        preset_row.addWidget(self.preset_note, 1)
        preset_row.addWidget(self.advanced)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.title)
        right_layout.addWidget(self.about)
        right_layout.addLayout(preset_row)
        right_layout.addWidget(scroll, 1)

        self.toml = QPlainTextEdit()
        self.toml.setObjectName("wizardToml")
        self.toml.setReadOnly(True)
        self.toml.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.command = QPlainTextEdit()
        self.command.setObjectName("wizardCommand")
        self.command.setReadOnly(True)
        self.command.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        equivalents = QTabWidget()
        for editor, name in ((self.toml, "Project file (TOML)"), (self.command, "Command line")):
            panel = QWidget()
            panel_layout = QHBoxLayout(panel)
            panel_layout.setContentsMargins(4, 4, 4, 4)
            panel_layout.addWidget(editor, 1)
            panel_layout.addWidget(_copy_button(editor), 0, Qt.AlignmentFlag.AlignTop)
            equivalents.addTab(panel, name)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.list)
        top.addWidget(right)
        top.setStretchFactor(1, 1)
        top.setSizes([260, 640])
        whole = QSplitter(Qt.Orientation.Vertical)
        whole.addWidget(top)
        whole.addWidget(equivalents)
        whole.setSizes([420, 150])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(whole)

    # ---- methods ---------------------------------------------------------------------------------

    def initializePage(self) -> None:
        if self.owner.methods:
            self.show_methods(self.owner.methods)
        self.refresh_equivalents()

    def show_methods(self, methods) -> None:
        current = self.owner.draft.method.name
        self.list.blockSignals(True)
        self.list.clear()
        for cls in methods:
            item = QListWidgetItem(f"{cls.title}\n{cls.summary}")
            item.setData(NAME_ROLE, cls.name)
            item.setToolTip(cls.paper)
            self.list.addItem(item)
        self.list.fit_items()
        self.list.blockSignals(False)
        names = [cls.name for cls in methods]
        self.select_method(current if current in names else names[0], keep_settings=current in names)
        self.methods_shown.emit()

    def select_method(self, name: str, keep_settings: bool = False) -> None:
        """Select ``name``; a newly chosen method starts from its demo settings (paper's if none)."""
        for row in range(self.list.count()):
            if self.list.item(row).data(NAME_ROLE) == name:
                self._keep_settings = keep_settings
                self.list.setCurrentRow(row)
                self._keep_settings = False
                return

    def _method_selected(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None or item.data(NAME_ROLE) is None:
            return
        cls = next(c for c in self.owner.methods if c.name == item.data(NAME_ROLE))
        self.method_cls = cls
        self.title.setText(cls.title)
        roles = ", ".join(cls.roles.required) + (f" (optional: {', '.join(cls.roles.optional)})"
                                                   if cls.roles.optional else "")
        self.about.setText(f"{cls.summary}\nPaper: {cls.paper}\nData roles: {roles}")
        if getattr(self, "_keep_settings", False) and self.owner.draft.method.name == cls.name:
            self._build_form()
            preset = matching_preset(self.owner.draft)
            self.preset_note.setText("The settings of the project or run this wizard started from"
                                     + (f": the {PRESETS[preset].lower()}." if preset else ", changed from every preset."))
        else:
            self.apply_preset("demo")

    def apply_preset(self, preset: str, *, keep_data: bool | None = None) -> None:
        """The preset's whole recipe; when the person chose data of their own, they are asked
        whether the preset's data replaces it (``keep_data`` answers for them)."""
        if self.method_cls is None:
            return
        draft = self.owner.draft
        try:
            result = apply_preset(draft, self.method_cls.name, preset)
            if result.data_from is not None and result.config.data != draft.data and not shipped_data(draft):
                if keep_data is None:
                    keep_data = not self._use_preset_data(result.data_from.name)
                if keep_data:
                    result = apply_preset(draft, self.method_cls.name, preset, keep_data=True)
        except UserError as error:
            self.preset_note.setText(str(error))
            return
        self.owner.draft = result.config
        base = self.owner.base_config
        if result.config.method.name != base.method.name and result.config.description == base.description:
            result.config.description = f"{self.method_cls.title} set up in the app, starting from \"{base.name}\"."
        self.preset_note.setText(result.note)
        self._build_form()

    def _use_preset_data(self, source: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, "Use the preset's data?",
                          f"This preset was made for the data of {source}. Use that data (and its prompt "
                          "templates) instead of the data you chose?", parent=self)
        box.setObjectName("presetDataQuestion")
        use = box.addButton("Use the preset's data", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep my data", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        return box.clickedButton() is use

    def _show_preset(self) -> None:
        """The preset the settings are, or "Custom"."""
        preset = matching_preset(self.owner.draft)
        index = self.preset.findData(preset) if preset else self.preset.findText(CUSTOM)
        self.preset.setCurrentIndex(index)

    # ---- the form ----------------------------------------------------------------------------------

    def _clear(self, form: QFormLayout) -> None:
        while form.rowCount():
            form.removeRow(0)

    def _build_form(self) -> None:
        self._clear(self.params_form)
        self._clear(self.settings_form)
        self.fields.clear()
        draft, cls = self.owner.draft, self.method_cls
        self.params_box.setTitle(f"Hyperparameters of {cls.title}")
        advanced = self.advanced.isChecked()
        shown = [h for h in cls.hyperparameters if advanced or not h.advanced]
        for h in shown:
            field = hyperparameter_field(h, draft.method.params.get(h.name, h.default), cls)
            self._add(self.params_form, f"param:{h.name}", field, h)
        hidden = len(cls.hyperparameters) - len(shown)
        if not cls.hyperparameters:
            self.params_form.addRow(QLabel(f"{cls.title} has no hyperparameters of its own."))
        elif hidden:
            self.params_form.addRow(QLabel(f"{hidden} more under “Show advanced settings”."))
        for setting in SETTINGS:
            if advanced or not setting.advanced:
                self._add(self.settings_form, setting.path, setting_field(setting, draft), setting)
        # Lay the new rows out now rather than on the next event-loop turn, so the form never shows squeezed.
        self.form_widget.layout().activate()
        self.form_widget.resize(self.scroll.viewport().width(),
                                max(self.form_widget.sizeHint().height(), self.scroll.viewport().height()))
        self._field_changed()

    def _add(self, form: QFormLayout, key: str, field: Field, spec) -> None:
        column = QWidget()
        column_layout = QVBoxLayout(column)
        column_layout.setContentsMargins(0, 0, 0, 0)
        column_layout.setSpacing(1)
        column_layout.addWidget(field.widget)
        column_layout.addWidget(field.error)
        form.addRow(field.label, column)
        # Widgets added to a shown form appear only on the next event-loop turn; show them now.
        field.label.show()
        column.show()
        field.changed.connect(self._field_changed)
        self.fields[key] = (field, spec)

    def field(self, key: str) -> Field:
        """The field for ``param:<name>`` or a settings path such as ``training.max_steps``."""
        return self.fields[key][0]

    def _field_changed(self) -> None:
        draft = self.owner.draft
        for key, (field, spec) in self.fields.items():
            if field.problem:
                continue
            try:
                value = field.value()
            except (ValueError, UserError):
                continue
            if key.startswith("param:"):
                draft.method.params[spec.name] = value
            else:
                spec.set(draft, value)
        self.refresh_equivalents()
        self._show_preset()
        self.completeChanged.emit()

    def refresh_equivalents(self) -> None:
        try:
            self.toml.setPlainText(self.owner.draft.to_toml())
        except UserError as error:
            self.toml.setPlainText(f"# Not a valid project yet: {error}")
        self.command.setPlainText(self.owner.command_line())

    def problems(self) -> list[str]:
        return [f"{field.label_text}: {field.problem}" for field, _ in self.fields.values() if field.problem]

    def isComplete(self) -> bool:
        return self.method_cls is not None and not self.problems()

    def validatePage(self) -> bool:
        self._field_changed()
        return self.isComplete()
