"""The comparison panel: one prompt, the original model and the unlearned one side by side.

Both sides come from the same loaded base model (adapter off and on), with the same prompt,
decoding and seed, and stream token by token. The model session is loaded once in the background
(core/compare.py) and reused for every generation; each pane's header says what produced it.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.results.compare import CompareSession, CompareSpec, Decoding, PairResult, PromptItem

from .error_dialog import show_error
from .worker import JobRunner

DIFFERENCE_COLOUR = QColor("#fff1b8")  # marks where the two sides stop agreeing
MAX_TOKENS_LIMIT = 1024


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


class ComparePanel(QWidget):
    """Compare a finished run with the original model (``set_run``) or two runs (``set_runs``)."""

    session_ready = Signal()  # a model session is loaded and the prompt sets are filled
    generation_finished = Signal(object)  # the PairResult of a generation that ran to its end or was stopped

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.session: CompareSession | None = None
        self._request = 0  # bumps on every new run selection; older jobs' results are dropped
        self._stop: threading.Event | None = None
        self._generating = False

        self.title = QLabel("Compare")
        self.title.setObjectName("compareTitle")
        title_font = self.title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.3)
        title_font.setBold(True)
        self.title.setFont(title_font)
        self.status = QLabel("Pick a finished run to compare it with the original model.")
        self.status.setObjectName("compareStatus")
        self.status.setWordWrap(True)

        self.set_picker = QComboBox()
        self.set_picker.setObjectName("promptSetPicker")
        self.set_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.item_picker = QComboBox()
        self.item_picker.setObjectName("promptPicker")
        self.item_picker.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.item_picker.setMinimumContentsLength(30)
        self.set_picker.currentIndexChanged.connect(self._fill_items)
        self.item_picker.currentIndexChanged.connect(self._use_item)
        picker_row = QHBoxLayout()
        picker_row.addWidget(QLabel("Prompt set:"))
        picker_row.addWidget(self.set_picker)
        picker_row.addWidget(self.item_picker, 1)

        self.prompt = QPlainTextEdit()
        self.prompt.setObjectName("promptBox")
        self.prompt.setPlaceholderText("Type a prompt, or pick one from a prompt set. "
                                       "The model is given exactly this text.")
        self.prompt.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        line = self.prompt.fontMetrics().lineSpacing()
        self.prompt.setFixedHeight(line * 4 + 12)
        self.prompt.textChanged.connect(self._prompt_edited)
        self.reference = QLabel()
        self.reference.setObjectName("referenceLabel")
        self.reference.setWordWrap(True)
        self.reference.setStyleSheet("color: #555")

        self.greedy = QRadioButton("Greedy")
        self.greedy.setChecked(True)
        self.sampled = QRadioButton("Sampled")
        modes = QButtonGroup(self)
        modes.addButton(self.greedy)
        modes.addButton(self.sampled)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.05, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(1.0)
        self.temperature.setToolTip("Sampling temperature: below 1 sharper, above 1 more random")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Both sides sample with this seed, so only the adapter makes them differ")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, MAX_TOKENS_LIMIT)
        self.max_tokens.setValue(48)
        self.sampled.toggled.connect(self._sampling_toggled)
        self._sampling_toggled(False)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.clicked.connect(self.stop)
        decoding_row = QHBoxLayout()
        decoding_row.addWidget(QLabel("Decoding:"))
        decoding_row.addWidget(self.greedy)
        decoding_row.addWidget(self.sampled)
        for label, widget in (("Temperature", self.temperature), ("Seed", self.seed), ("Max tokens", self.max_tokens)):
            decoding_row.addSpacing(8)
            decoding_row.addWidget(QLabel(f"{label}:"))
            decoding_row.addWidget(widget)
        decoding_row.addStretch(1)
        decoding_row.addWidget(self.stop_button)
        decoding_row.addWidget(self.generate_button)

        self.panes = (SidePane(), SidePane())
        self.panes[0].setObjectName("leftPane")
        self.panes[1].setObjectName("rightPane")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        for pane in self.panes:
            split.addWidget(pane)
        self.verdict = QLabel()
        self.verdict.setObjectName("compareVerdict")
        self.verdict.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.status)
        layout.addLayout(picker_row)
        layout.addWidget(self.prompt)
        layout.addWidget(self.reference)
        layout.addLayout(decoding_row)
        layout.addWidget(split, 1)
        layout.addWidget(self.verdict)
        self._update_buttons()

    # ---- choosing what to compare ----------------------------------------------------------------

    def set_run(self, store, run_id: str) -> None:
        """Compare a finished run (adapter on) with the original model (adapter off)."""
        self._load(store, run_id)

    def set_runs(self, store, run_id_a: str, run_id_b: str) -> None:
        """Compare two finished runs of the same base model, both adapters on one loaded base."""
        self._load(store, run_id_a, run_id_b)

    def _load(self, store, *run_ids: str) -> None:
        if self.session is not None and tuple(r.run_id for r in self.session.spec.runs) == run_ids:
            return  # already loaded: the session is reused as it is
        self.stop()
        self._request += 1
        request = self._request
        # The old session's base is reused when the new runs share it (never while it generates);
        # otherwise it is let go before the next one loads.
        reuse = self.session if not self._generating else None
        self.session = None
        self._clear_sets()
        for pane in self.panes:
            pane.clear()
            pane.header.clear()
        self.verdict.clear()
        try:
            spec = CompareSpec.from_store(store, *run_ids)
        except UserError as error:
            self.title.setText("Compare")
            self.status.setText(f"{error.problem}. {error.fix}")
            self._update_buttons()
            show_error(self, error)
            return
        runs = spec.runs
        if len(runs) == 1:
            self.title.setText(f"Compare {runs[0].label} with the original model")
        else:
            self.title.setText(f"Compare {runs[0].label} with {runs[1].label}")
        self.status.setText(f"Loading the base model {runs[0].model_name} and the adapter"
                            f"{'s' if len(runs) > 1 else ''}…")
        self._update_buttons()
        self.jobs.start_streaming(
            lambda report: CompareSession.load(spec, progress=report, reuse=reuse),
            lambda message: request == self._request and self.status.setText(message),
            lambda session: self._loaded(request, session),
            lambda error, trace: self._load_failed(request, error, trace),
        )

    def _loaded(self, request: int, session: CompareSession) -> None:
        if request != self._request:
            return
        self.session = session
        left, right = (session.side(key) for key in session.default_pair)
        for pane, side in zip(self.panes, (left, right), strict=True):
            pane.header.setText(side.label)
            pane.header.setToolTip(f"{'Adapter' if side.adapter else 'Base model'} folder: {side.source}")
        self._fill_sets()
        note = f" Not available: {'; '.join(session.notes)}." if session.notes else ""
        self.status.setText("Both sides come from one loaded copy of the base model, with the same prompt, "
                            f"decoding and seed.{note}")
        self._update_buttons()
        self.session_ready.emit()

    def _load_failed(self, request: int, error: Exception, trace: str) -> None:
        if request != self._request:
            return
        self.status.setText(f"Could not load the model: {getattr(error, 'problem', error)}")
        self._update_buttons()
        show_error(self, error, trace)

    # ---- prompt sets -----------------------------------------------------------------------------

    def _clear_sets(self) -> None:
        self.set_picker.blockSignals(True)
        self.set_picker.clear()
        self.set_picker.blockSignals(False)
        self.item_picker.clear()
        self.reference.clear()

    def _fill_sets(self) -> None:
        self._clear_sets()
        self.set_picker.blockSignals(True)
        for name, items in self.session.prompt_sets.items():
            self.set_picker.addItem(f"{name} ({len(items)})", name)
        self.set_picker.blockSignals(False)
        self._fill_items()

    def _fill_items(self) -> None:
        self.item_picker.blockSignals(True)
        self.item_picker.clear()
        name = self.set_picker.currentData()
        if self.session is not None and name is not None:
            for item in self.session.prompt_sets[name]:
                self.item_picker.addItem(item.label, item)
        self.item_picker.blockSignals(False)
        self._use_item()

    def _current_item(self) -> PromptItem | None:
        return self.item_picker.currentData()

    def _use_item(self) -> None:
        item = self._current_item()
        if item is not None:
            self.prompt.setPlainText(item.prompt)

    def _prompt_edited(self) -> None:
        item = self._current_item()
        if item is not None and self.prompt.toPlainText() == item.prompt:
            what = "The data's answer" if item.set_name != "general" else "The text goes on"
            self.reference.setText(f"{what}: {item.reference}" if item.reference else "")
        else:
            self.reference.setText("Your own prompt: the model is given exactly the text above."
                                   if self.prompt.toPlainText().strip() else "")

    # ---- generating ------------------------------------------------------------------------------

    def decoding(self) -> Decoding:
        return Decoding(sample=self.sampled.isChecked(), seed=self.seed.value(),
                        max_new_tokens=self.max_tokens.value(), temperature=self.temperature.value())

    def generate(self) -> None:
        """Generate both sides for the prompt in the box, streaming into the panes."""
        if self.session is None or self._generating:
            return
        prompt = self.prompt.toPlainText()
        if not prompt.strip():
            show_error(self, UserError("The prompt is empty", "Type a prompt, or pick one from a prompt set."))
            return
        session, decoding, request = self.session, self.decoding(), self._request
        stop = self._stop = threading.Event()
        for pane in self.panes:
            pane.clear()
        self.verdict.setText("Generating…")
        self._generating = True
        self._update_buttons()
        self.jobs.start_streaming(
            lambda report: session.run_pair(prompt, decoding, report, should_stop=stop.is_set),
            lambda item: request == self._request and self.panes[item[0]].append(item[1]),
            lambda result: self._generated(request, result, decoding),
            lambda error, trace: self._generation_failed(request, error, trace),
        )

    def stop(self) -> None:
        """Ask a running generation to end after its current token."""
        if self._stop is not None:
            self._stop.set()

    def _generated(self, request: int, result: PairResult, decoding: Decoding) -> None:
        self._generating = False
        self._stop = None
        self._update_buttons()
        if request != self._request:
            return
        texts = [text.strip() for text in result.texts]
        common = _common_prefix(*texts)
        same = texts[0] == texts[1]
        for pane, text, tokens in zip(self.panes, texts, result.tokens, strict=True):
            pane.show_final(text, tokens, None if same else common)
        how = (f"sampled, temperature {decoding.temperature:g}, seed {decoding.seed}" if decoding.sample
               else "greedy")
        if result.stopped:
            verdict = "Stopped."
        elif same:
            verdict = "Both sides generated the same text."
        elif common == 0:
            verdict = "The two sides differ from the first word (marked in yellow)."
        else:
            verdict = f"The two sides agree on “{texts[0][:common].strip()}”, then differ (marked in yellow)."
        self.verdict.setText(f"{verdict}  ({how}; {result.seconds:.1f} s)")
        self.generation_finished.emit(result)

    def _generation_failed(self, request: int, error: Exception, trace: str) -> None:
        self._generating = False
        self._stop = None
        self._update_buttons()
        if request != self._request:
            return
        self.verdict.setText(f"Generation failed: {getattr(error, 'problem', error)}")
        show_error(self, error, trace)

    def _sampling_toggled(self, sampled: bool) -> None:
        self.temperature.setEnabled(sampled)
        self.seed.setEnabled(sampled)

    def _update_buttons(self) -> None:
        ready = self.session is not None
        self.generate_button.setEnabled(ready and not self._generating)
        self.stop_button.setEnabled(self._generating)
        self.set_picker.setEnabled(ready)
        self.item_picker.setEnabled(ready)


def _common_prefix(a: str, b: str) -> int:
    """Characters the two texts share from the start, backed up to a word boundary."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    if n < min(len(a), len(b)) and n > 0:
        while n > 0 and not a[n - 1].isspace():
            n -= 1
    return n
