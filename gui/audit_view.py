"""A finished run's robustness audit: did the model forget, or only hide it?

One button audits the selected run (relearning, prompt attacks, hidden-state probes; the original
and reference models under the same attacks), with progress and Cancel; the verdict in plain words
(robust, partly, shallow) with the numbers behind it; the relearning curves, a bar per prompt
attack and the probes by layer. The audit runs as a background job (gui/jobs.py) and is stored
with the run; the newest one shows when the run is selected again."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLabel,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QWidget,
)

from unlearn_studio.gui.audit_plots import AttackBars, ProbePlots, RecoveryPlots
from unlearn_studio.gui.jobs import JobContext, Jobs, JobSlot
from unlearn_studio.gui.numbers import duration_text
from unlearn_studio.gui.work_header import work_header

AUDITABLE = ("finished", "stopped")  # runs that saved their adapter
VERDICT_STYLES = {"robust": "background: #dff3e3; border: 1px solid #7cc48e;",
                  "partly": "background: #fff4d6; border: 1px solid #e0b84c;",
                  "shallow": "background: #f9dcdc; border: 1px solid #d9726b;",
                  "not forgotten": "background: #fde2c8; border: 1px solid #e09a5c;"}
NEUTRAL_STYLE = "background: #eeeeee; border: 1px solid #cccccc;"
EXPLAINED = ("The audit fine-tunes the unlearned, original and reference models a few steps (on a slice of the "
             "forget data, on related data, on general text), asks the forget questions in other ways, and probes "
             "the hidden states. A recovery ratio of 0 is the level of a model that never saw the forget data, "
             "1 the original's.")


def _read_latest(store, run_id: str, _ctx: JobContext):
    # The audit's modules (and torch behind them) are imported on a worker, never at start-up.
    from unlearn_studio.core.results.audit.result import latest

    return latest(store, run_id)


def _audit(store, run_id: str, ctx: JobContext):
    from unlearn_studio.core.results.audit.audit import audit_run

    return audit_run(store, run_id, progress=ctx.report, should_stop=ctx.should_stop)


class AuditView(QWidget):
    shown = Signal()  # an audit (or its absence) is on screen

    def __init__(self, jobs: Jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.store = None
        self.run_id = ""
        self.status = ""
        self.result = None
        self._job = JobSlot(jobs, parent=self)  # reading or auditing: the newest request wins

        self.heading = QLabel("Select a finished run to audit it.")
        self.heading.setObjectName("auditHeading")
        self.heading.setWordWrap(True)
        self.audit_button = QPushButton("Audit this run")
        self.audit_button.setObjectName("auditButton")
        self.audit_button.setToolTip(EXPLAINED)
        self.audit_button.clicked.connect(self.audit)
        self.audit_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("auditProgress")
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelAuditButton")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.verdict = QLabel()
        self.verdict.setObjectName("auditVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verdict.hide()

        self.recovery = RecoveryPlots()
        self.attacks = AttackBars()
        self.probes = ProbePlots()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("auditTabs")
        self.tabs.addTab(self.recovery, "Relearning")
        self.tabs.addTab(self.attacks, "Prompt attacks")
        self.tabs.addTab(self.probes, "Probes")
        self.tabs.hide()

        layout = work_header(self, self.heading, self.audit_button, self.progress, self.cancel_button)
        layout.addWidget(self.verdict)
        layout.addWidget(self.tabs, 1)

    # ---- a run ------------------------------------------------------------------------------------

    def set_run(self, store, run_id: str, status: str) -> None:
        """Show ``run_id``'s newest audit (read in the background), or what auditing it would need."""
        self.store, self.run_id, self.status = store, run_id, status
        self.result = None
        self._set_busy(False)
        self.audit_button.setEnabled(False)  # until the run's audit (or its absence) is known
        self.audit_button.setText("Audit this run")
        self._show_nothing("Reading the run's audit…")
        self._job.start(lambda ctx: _read_latest(store, run_id, ctx), self.show_result, self._failed,
                        name=f"Reading the audit of run {run_id[:8]}", errors="log")

    def _can_audit(self) -> bool:
        return self.store is not None and not self.store.readonly and self.status in AUDITABLE

    def audit(self) -> None:
        """Audit the selected run now (a few minutes on the demo)."""
        if not self._can_audit():
            return
        store, run_id = self.store, self.run_id
        self._set_busy(True)
        self.heading.setText("Auditing: loading the models…")
        self._job.start(lambda ctx: _audit(store, run_id, ctx), self.show_result, self._failed,
                        on_item=self._show_progress, on_cancelled=self._cancelled, cancellable=True,
                        name=f"Auditing run {run_id[:8]}")

    def cancel(self) -> None:
        if self._job.job is not None and self._job.job.running:
            self._job.job.cancel()
            self.cancel_button.setEnabled(False)
            self.heading.setText("Cancelling the audit after this batch…")

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.audit_button.setEnabled(not busy and self._can_audit())
        self.progress.setRange(0, 0)

    def _show_progress(self, event) -> None:
        """An AuditProgress: units of work done of the whole audit, and the time left."""
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(min(event.done, event.total))
        left = f", about {duration_text(event.eta_s)} left" if event.eta_s is not None else ""
        stage = f"{event.stage}: " if event.stage else ""
        self.heading.setText(f"Auditing — {stage}{event.what}{left}.")

    def _cancelled(self) -> None:
        self._set_busy(False)
        self.heading.setText("The audit was cancelled; nothing was recorded. Audit this run starts it again.")

    def _failed(self, error: Exception, trace: str) -> None:
        self._set_busy(False)
        self.heading.setText(f"No audit: {getattr(error, 'problem', error)}")
        self.shown.emit()

    # ---- showing ----------------------------------------------------------------------------------

    def _show_nothing(self, text: str) -> None:
        self.heading.setText(text)
        self.verdict.hide()
        self.tabs.hide()

    def show_result(self, result) -> None:
        """Draw an audit result (None: the run has none yet)."""
        self.result = result
        self._set_busy(False)
        if result is None:
            if self.status in AUDITABLE:
                self._show_nothing("This run has not been audited. " + EXPLAINED + " About 3–8 minutes on the demo.")
            else:
                self._show_nothing(f"The run is {self.status or 'not finished'}: only a run that saved its adapter "
                                   "(finished, or stopped and saved) can be audited.")
            self.shown.emit()
            return
        self.audit_button.setText("Audit again")
        target = result.target
        took = duration_text(result.seconds)
        self.heading.setText(f"Audit of {result.created} ({took}): {target['label']} on '{target['set']}' "
                             f"({target['rows']} items), the unlearned model against the original and "
                             f"{'the reference model' if 'reference' in result.models else 'the target level'}.")
        word = result.verdict.word if result.verdict else ""
        self.verdict.setText(result.verdict.paragraph if result.verdict else "")
        self.verdict.setStyleSheet(VERDICT_STYLES.get(word, NEUTRAL_STYLE) + " padding: 6px; color: #1a1a1a;")
        self.verdict.show()
        self._draw(result)
        self.tabs.show()
        self.shown.emit()

    def _draw(self, result) -> None:
        label = result.target["label"]
        models = list(result.models)
        parts = ((0, result.relearn, lambda: self.recovery.show_result(result.relearn, label)),
                 (1, result.prompts, lambda: self.attacks.show_result(result.prompts, label, models)),
                 (2, result.probes, lambda: self.probes.show_result(result.probes)))
        names = ("relearn", "prompts", "probes")
        for (index, part, draw), name in zip(parts, names, strict=True):
            self.tabs.setTabEnabled(index, part is not None)
            why = result.skipped.get(name, "not asked for in this audit")
            self.tabs.setTabToolTip(index, "" if part is not None else f"Not run: {why}")
            if part is not None:
                draw()
