"""The export dialog: write a finished run as a PEFT adapter folder (optionally a merged model too),
then show what the export checked and the model card it wrote."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.results.export import ExportResult, merged_dir_for, plan_export
from unlearn_studio.core.results.finished_run import FinishedRun
from unlearn_studio.gui.jobs import Jobs
from unlearn_studio.gui.status_line import StatusLine

WHAT_IS_WRITTEN = ("The folder gets the adapter (adapter_model.safetensors, adapter_config.json), the tokenizer, "
                   "the run's config.toml and a README.md model card. It is then reloaded with "
                   "PeftModel.from_pretrained and must give the same greedy answer as the run's adapter.")

RESULTS_HEIGHT = 760  # the dialog grows to this height (at most the screen's) to show the checks and the card
SCREEN_MARGIN = 60  # room left for the window's frame and the desktop's panels


class ExportDialog(QDialog):
    export_finished = Signal(object)  # the ExportResult

    def __init__(self, store, run_id: str, jobs: Jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.run_id = run_id
        self.jobs = jobs
        self.result: ExportResult | None = None
        self._busy = False
        self._run_ok = False  # the run has an adapter to export
        self.setWindowTitle("Export run")
        self.setMinimumWidth(720)

        self.heading = QLabel()
        self.heading.setObjectName("exportHeading")
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.heading.setFont(font)
        explanation = QLabel(WHAT_IS_WRITTEN)
        explanation.setWordWrap(True)

        self.destination = QLineEdit()
        self.destination.setObjectName("destinationEdit")
        self.destination.setPlaceholderText("a new or empty folder")
        self.destination.textChanged.connect(self._destination_changed)
        choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose_folder)
        destination_row = QHBoxLayout()
        destination_row.addWidget(self.destination, 1)
        destination_row.addWidget(choose)
        self.merged = QCheckBox()
        self.merged.setObjectName("mergedCheck")
        form = QFormLayout()
        form.addRow("Destination:", destination_row)
        form.addRow("", self.merged)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: the export reports steps, not percentages
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress.hide()
        self.status = StatusLine("exportStatus")

        self.checks = QLabel()
        self.checks.setObjectName("exportChecks")
        self.checks.setWordWrap(True)
        self.checks.setTextFormat(Qt.TextFormat.RichText)
        self.checks.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        checks_box = QGroupBox("Checks")
        QVBoxLayout(checks_box).addWidget(self.checks)
        self.card = QTextBrowser()
        self.card.setObjectName("modelCard")
        self.card.setOpenExternalLinks(True)
        card_box = QGroupBox("Model card (README.md)")
        QVBoxLayout(card_box).addWidget(self.card)
        self.results = QWidget()
        results_layout = QVBoxLayout(self.results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addWidget(checks_box)
        results_layout.addWidget(card_box, 1)
        self.results.hide()

        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("exportButton")
        self.open_button = self.buttons.addButton("Open folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_button.hide()
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.start_export)
        self.open_button.clicked.connect(self._open_folder)
        self.close_button.clicked.connect(self.reject)

        for label in (self.heading, explanation, self.status):
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.filler = QWidget()  # takes the spare height until there are results to show
        self.filler.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(explanation)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.filler, 1)
        layout.addWidget(self.buttons)

        self._describe_run()
        self._update_merged_text()

    # ---- set-up ----------------------------------------------------------------------------------

    def _describe_run(self) -> None:
        try:
            run = FinishedRun.from_store(self.store, self.run_id)
        except UserError as error:
            self.heading.setText(f"Export run {self.run_id[:8]}")
            self.status.say(f"{error.problem}. {error.fix}", problem=True)
            self.export_button.setEnabled(False)
            return
        self._run_ok = True
        self.heading.setText(f"Export {run.label} ({run.row['status']})")
        self.setWindowTitle(f"Export {run.label}")
        self.destination.setText(str(_free_folder(Path(run.row["output_dir"]) / "export")))

    def _destination_changed(self) -> None:
        self._update_merged_text()
        self.export_button.setEnabled(self._run_ok and not self._busy)

    def _update_merged_text(self) -> None:
        text = self.destination.text().strip()
        where = merged_dir_for(Path(text).expanduser()).name if text else "DESTINATION-merged"
        self.merged.setText(f"Also write a merged full model (base weights with the adapter folded in) to {where}")

    def _choose_folder(self) -> None:
        start = self.destination.text().strip() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Export into folder", str(Path(start).parent))
        if folder:
            self.destination.setText(folder)

    # ---- exporting -------------------------------------------------------------------------------

    def start_export(self) -> None:
        """Check the input here (fast), then export in the background."""
        if self._busy:
            return
        text = self.destination.text().strip()
        if not text:
            self.status.refuse(UserError("No destination folder is given", "Choose a new or empty folder to export into."))
            return
        try:
            plan = plan_export(self.store, self.run_id, Path(text).expanduser(), merged=self.merged.isChecked())
        except UserError as error:
            self.status.refuse(error)
            return
        self._set_busy(True)
        self.results.hide()
        self.status.say("Starting the export…")
        self.jobs.start(lambda ctx: plan.run_export(progress=ctx.report), self._exported, self._failed,
                        on_item=self.status.say, name=f"Exporting run {self.run_id[:8]}")

    def _exported(self, result: ExportResult) -> None:
        self._set_busy(False)
        self.result = result
        lines = []
        for check in result.checks:
            mark, colour = ("✓", "#1a7f37") if check.passed else ("✗", "#b42318")
            lines.append(f"<p style='margin:2px'><span style='color:{colour}; font-weight:bold'>{mark}</span> "
                         f"<b>{_html(check.name)}</b>: {_html(check.detail)}</p>")
        self.checks.setText("".join(lines))
        self.card.setMarkdown(result.card)
        self.filler.hide()
        self.results.show()
        room = self.screen().availableGeometry().height() - SCREEN_MARGIN
        if self.height() < min(RESULTS_HEIGHT, room):
            self.resize(max(self.width(), 820), min(RESULTS_HEIGHT, room))
        where = f"{result.out_dir}" + (f" and {result.merged_dir}" if result.merged_dir else "")
        if result.ok:
            self.status.say(f"Exported to {where}. Every check passed.")
        else:
            self.status.say(f"Exported to {where}, but a check failed: see below.", problem=True)
        self.open_button.show()
        self.export_button.setEnabled(False)  # the folder is no longer empty; another one re-enables it
        self.export_finished.emit(result)

    def _failed(self, error: Exception, trace: str) -> None:
        """The error dialog and the log have it (the job's default); the dialog's status says it too."""
        self._set_busy(False)
        self.status.say(f"The export failed: {getattr(error, 'problem', error)}. Nothing was written.", problem=True)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.progress.setVisible(busy)
        self.export_button.setEnabled(self._run_ok and not busy)
        self.close_button.setEnabled(not busy)
        self.destination.setEnabled(not busy)
        self.merged.setEnabled(not busy)

    def _open_folder(self) -> None:
        if self.result is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result.out_dir)))

    def reject(self) -> None:
        """Closing waits for a running export: its files are still being written."""
        if self._busy:
            self.status.say("The export is still running; close the dialog when it is done.")
            return
        super().reject()


def _free_folder(preferred: Path) -> Path:
    """``preferred`` if it is new or empty, else the first free ``preferred-2``, ``-3``, …"""
    candidate, number = preferred, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = preferred.with_name(f"{preferred.name}-{number}")
    return candidate


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
