"""The comparison panel: one prompt, the original model and the unlearned one side by side.

Both sides come from the same loaded base model (adapter off and on), with the same prompt,
decoding and seed, and stream token by token. The model session is loaded once in the background
(core/results/compare.py) and reused for every generation; each pane's header says what produced
it. A typed question gets the project's template (as in training) unless "Raw prompt" is on.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
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
from unlearn_studio.gui.error_dialog import show_error
from unlearn_studio.gui.jobs import Jobs, JobSlot
from unlearn_studio.gui.numbers import number
from unlearn_studio.gui.side_pane import SidePane

MAX_TOKENS_LIMIT = 1024
OWN_PROMPT = "(your own prompt)"


class ComparePanel(QWidget):
    """Compare a finished run with the original model (``set_run``) or two runs (``set_runs``)."""

    session_ready = Signal()  # a model session is loaded and the prompt sets are filled
    generation_finished = Signal(object)  # the PairResult of a generation that ran to its end or was stopped

    def __init__(self, jobs: Jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.session: CompareSession | None = None
        self.run_ids: tuple[str, ...] = ()
        self._loading = JobSlot(jobs, parent=self)  # the newest selection's session wins
        self._generation = JobSlot(jobs, parent=self)

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
        self.item_picker.setMinimumContentsLength(20)
        self.set_picker.currentIndexChanged.connect(self._fill_items)
        self.item_picker.currentIndexChanged.connect(self._use_item)
        self.raw = QCheckBox("Raw prompt")
        self.raw.setObjectName("rawPromptCheck")
        self.raw.setToolTip("Off: a question you type is put in the project's template, as in training "
                            "(e.g. “### Question: …\\n### Answer:”).\nOn: the model is given exactly the text in the box.")
        self.raw.toggled.connect(self._raw_toggled)
        picker_row = QHBoxLayout()
        picker_row.addWidget(QLabel("Prompt set:"))
        picker_row.addWidget(self.set_picker)
        picker_row.addWidget(self.item_picker, 1)
        picker_row.addWidget(self.raw)

        self.prompt = QPlainTextEdit()
        self.prompt.setObjectName("promptBox")
        self.prompt.setPlaceholderText("Type a question, or pick one from a prompt set.")
        self.prompt.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        line = self.prompt.fontMetrics().lineSpacing()
        self.prompt.setFixedHeight(line * 3 + 12)
        self.prompt.textChanged.connect(self._prompt_edited)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.clicked.connect(self.stop)
        prompt_buttons = QVBoxLayout()
        prompt_buttons.addWidget(self.generate_button)
        prompt_buttons.addWidget(self.stop_button)
        prompt_buttons.addStretch(1)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(self.prompt, 1)
        prompt_row.addLayout(prompt_buttons)
        self.given = QLabel()
        self.given.setObjectName("givenPrompt")
        self.given.setWordWrap(True)
        self.given.setStyleSheet("color: #555")
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
        self.seed.setMaximumWidth(110)
        self.seed.setToolTip("Both sides sample with this seed, so only the adapter makes them differ")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, MAX_TOKENS_LIMIT)
        self.max_tokens.setValue(48)
        self.max_tokens.setToolTip("New tokens each side generates at most")
        self.sampled.toggled.connect(self._sampling_toggled)
        self._sampling_toggled(False)
        decoding = QGridLayout()
        decoding.addWidget(QLabel("Decoding:"), 0, 0)
        decoding.addWidget(self.greedy, 0, 1)
        decoding.addWidget(self.sampled, 0, 2)
        for column, (label, widget) in enumerate((("Temperature:", self.temperature), ("Seed:", self.seed),
                                                  ("Max tokens:", self.max_tokens))):
            decoding.addWidget(QLabel(label), 0, 3 + 2 * column, Qt.AlignmentFlag.AlignRight)
            decoding.addWidget(widget, 0, 4 + 2 * column)
        decoding.setColumnStretch(9, 1)

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
        layout.addLayout(prompt_row)
        layout.addWidget(self.given)
        layout.addWidget(self.reference)
        layout.addLayout(decoding)
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

    def clear(self, message: str) -> None:
        """Nothing to compare (the selection cannot be compared): say why, show nothing stale."""
        self._loading.cancel()
        self._generation.cancel()  # a generation for what was shown before is dropped
        self.run_ids = ()
        self.session = None
        self._clear_sets()
        for pane in self.panes:
            pane.clear()
            pane.header.clear()
        self.verdict.clear()
        self.title.setText("Compare")
        self.status.setText(message)
        self._update_buttons()

    def _load(self, store, *run_ids: str) -> None:
        if run_ids == self.run_ids and (self.session is not None or self._loading.pending):
            return  # already loaded (or loading): the session is reused as it is
        # The old session's base is reused when the new runs share it (never while it generates).
        reuse = self.session if not self._generation.pending else None
        try:
            spec = CompareSpec.from_store(store, *run_ids)
        except UserError as error:
            # Selecting a run that cannot be compared (running, failed, …) is not a mistake: say why here.
            self.clear(f"{error.problem}. {error.fix}")
            return
        self.clear("")
        self.run_ids = run_ids
        runs = spec.runs
        if len(runs) == 1:
            self.title.setText(f"Compare {runs[0].label} with the original model")
        else:
            self.title.setText(f"Compare {runs[0].label} with {runs[1].label}")
        self.status.setText(f"Loading the base model {runs[0].model_name} and the adapter"
                            f"{'s' if len(runs) > 1 else ''}…")
        self._loading.start(lambda ctx: CompareSession.load(spec, progress=ctx.report, reuse=reuse),
                            self._loaded, self._load_failed, on_item=self.status.setText,
                            name=f"Loading {runs[0].model_name} for Compare")

    def _loaded(self, session: CompareSession) -> None:
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

    def _load_failed(self, error: Exception, trace: str) -> None:
        self.run_ids = ()
        self.status.setText(f"Could not load the model: {getattr(error, 'problem', error)}")
        self._update_buttons()

    # ---- prompt sets -----------------------------------------------------------------------------

    def _clear_sets(self) -> None:
        for picker in (self.set_picker, self.item_picker):
            picker.blockSignals(True)
            picker.clear()
            picker.blockSignals(False)
        self.reference.clear()
        self.given.clear()

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
        self.item_picker.addItem(OWN_PROMPT, None)
        name = self.set_picker.currentData()
        if self.session is not None and name is not None:
            for item in self.session.prompt_sets[name]:
                self.item_picker.addItem(item.label, item)
        if self.item_picker.count() > 1:
            self.item_picker.setCurrentIndex(1)
        self.item_picker.blockSignals(False)
        self._use_item()

    def _current_item(self) -> PromptItem | None:
        return self.item_picker.currentData()

    def _shown_text(self, item: PromptItem) -> str:
        """What the box shows for a picked item: its question (the template is applied), or the
        whole prompt when the prompt is raw or the item is a text opening."""
        return item.prompt if self.raw.isChecked() or not item.template else item.label

    def _use_item(self) -> None:
        item = self._current_item()
        if item is not None:
            self.prompt.setPlainText(self._shown_text(item))

    def _raw_toggled(self) -> None:
        self._use_item()
        self._prompt_edited()

    def given_prompt(self) -> str:
        """Exactly what the model is given for the text in the box."""
        text = self.prompt.toPlainText()
        if self.raw.isChecked() or self.session is None:
            return text
        item = self._current_item()
        if item is not None and text == self._shown_text(item):
            return item.prompt
        return self.session.format_question(text)

    def _prompt_edited(self) -> None:
        item = self._current_item()
        text = self.prompt.toPlainText()
        if item is not None and text != self._shown_text(item):
            self.item_picker.blockSignals(True)
            self.item_picker.setCurrentIndex(0)  # the box no longer holds the picked item
            self.item_picker.blockSignals(False)
            item = None
        if item is not None:
            what = "The data's answer" if item.set_name != "general" else "The text goes on"
            self.reference.setText(f"{what}: {item.reference}" if item.reference else "")
        else:
            self.reference.clear()
        given = self.given_prompt() if text.strip() else ""
        self.given.setText(f"The model is given: {given!r}" if given and given != text else
                           ("The model is given exactly the text above." if given else ""))

    # ---- generating ------------------------------------------------------------------------------

    def decoding(self) -> Decoding:
        return Decoding(sample=self.sampled.isChecked(), seed=self.seed.value(),
                        max_new_tokens=self.max_tokens.value(), temperature=self.temperature.value())

    def generate(self) -> None:
        """Generate both sides for the prompt in the box, streaming into the panes."""
        if self.session is None or self._generation.pending:
            return
        if not self.prompt.toPlainText().strip():
            show_error(self, UserError("The prompt is empty", "Type a question, or pick one from a prompt set."))
            return
        session, decoding, prompt = self.session, self.decoding(), self.given_prompt()
        for pane in self.panes:
            pane.clear()
        self.verdict.setText("Generating…")
        self._generation.start(
            lambda ctx: session.run_pair(prompt, decoding, ctx.report, should_stop=ctx.should_stop),
            lambda result: self._generated(result, decoding), self._generation_failed,
            on_item=lambda item: self.panes[item[0]].append(item[1]), name="Generating both sides",
            cancellable=True)
        self._update_buttons()

    def stop(self) -> None:
        """Ask a running generation to end after its current token."""
        if self._generation.job is not None and self._generation.job.running:
            self._generation.job.cancel()

    def _generated(self, result: PairResult, decoding: Decoding) -> None:
        self._update_buttons()
        texts = [text.strip() for text in result.texts]
        common = _common_prefix(*texts)
        same = texts[0] == texts[1]
        for pane, text, tokens in zip(self.panes, texts, result.tokens, strict=True):
            pane.show_final(text, tokens, None if same else common)
        how = (f"sampled, temperature {number(decoding.temperature)}, seed {decoding.seed}" if decoding.sample
               else "greedy")
        if result.stopped:
            verdict = "Stopped."
        elif same:
            verdict = "Both sides generated the same text."
        elif common == 0:
            verdict = "The two sides differ from the first word (marked in yellow)."
        else:
            verdict = f"The two sides agree on “{texts[0][:common].strip()}”, then differ (marked in yellow)."
        self.verdict.setText(f"{verdict}  ({how}; {number(result.seconds)} s)")
        self.generation_finished.emit(result)

    def _generation_failed(self, error: Exception, trace: str) -> None:
        self._update_buttons()
        self.verdict.setText(f"Generation failed: {getattr(error, 'problem', error)}")

    def _sampling_toggled(self, sampled: bool) -> None:
        self.temperature.setEnabled(sampled)
        self.seed.setEnabled(sampled)

    def _update_buttons(self) -> None:
        ready = self.session is not None
        generating = self._generation.job is not None and self._generation.job.running
        self.generate_button.setEnabled(ready and not generating)
        self.stop_button.setEnabled(generating)
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
