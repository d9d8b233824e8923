"""Everything the app does with runs: the new-run wizard, starting a run (or queueing it behind the
one in progress), re-run, clone, resume, stop, export, compare, combine adapters, delete. One run
trains at a time (one copy of the weights in memory); the queue starts the next when one ends."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox, QMessageBox

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import EvaluationEvent, FailedEvent, FinishedEvent, StatusEvent
from unlearn_studio.core.files import remove_own_folder
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.error_dialog import show_error
from unlearn_studio.gui.projects_panel import distinct_name
from unlearn_studio.gui.run_queue import QueuedRun
from unlearn_studio.gui.run_session import RunSession
from unlearn_studio.gui.runs_table import run_label

if TYPE_CHECKING:
    from unlearn_studio.gui.main_window import MainWindow

USABLE = ("finished", "stopped")


def _last_session(store):
    # history.py reads checkpoints (torch): imported on the worker.
    from unlearn_studio.core.run.history import last_session_interrupted

    return last_session_interrupted(store)


class RunManager(QObject):
    run_started = Signal(object)  # the RunSession of a run just started
    run_ended = Signal(object, object)  # the RunSession and its RunResult (None when it did not start)
    changed = Signal()  # what can be done may have changed (a run started or ended, the queue moved)

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.queue = window.queue
        self.session: RunSession | None = None
        self.wizard = None
        self.last_session_box = None  # the offer to resume the run the last session left unfinished
        self.queue.changed.connect(self.changed)

    # ---- state -----------------------------------------------------------------------------------

    @property
    def store(self):
        return self.window.store

    @property
    def runs(self):
        return self.window.runs

    def writable(self) -> bool:
        return self.store is not None and not self.store.readonly

    def running(self) -> bool:
        return self.session is not None and self.session.running

    def selected(self) -> dict | None:
        runs = self.runs.selected_runs() if self.runs is not None else []
        return runs[0] if len(runs) == 1 else None

    def project_names(self) -> set[str]:
        return {p["name"] for p in self.store.projects()} if self.store is not None else set()

    # ---- starting --------------------------------------------------------------------------------

    def new_run(self, config: RunConfig | None = None, *, clone: bool = False):
        """Open the wizard on ``config`` (default: the open project's); Start saves and runs it.
        ``clone``: the wizard starts from a run's settings under a name no project has yet."""
        from unlearn_studio.gui.wizard import NewRunWizard  # the wizard's pages load with it, when first asked

        page = self.window.page
        base = config or page.config
        if base is None:
            return None
        draft = None
        if clone:
            draft = copy.deepcopy(base)
            draft.name = distinct_name(base.name, self.project_names())
        wizard = NewRunWizard(self.window.jobs, base, page.project_path, draft=draft,
                              store_path=self.store.path if self.store else None,
                              taken_names=self.project_names(), busy=self.running(), parent=self.window)
        wizard.accepted.connect(lambda: self._wizard_accepted(wizard))
        wizard.open()
        self.wizard = wizard
        return wizard

    def _wizard_accepted(self, wizard) -> None:
        path = Path(wizard.project_path).expanduser().resolve()
        config = wizard.result_config()
        if not (wizard.unchanged() and path == wizard.base_path):
            try:
                config.save(path)
            except Exception as error:
                show_error(self.window, error)
                return
        if self.window.open_project(path):
            self.start_run(RunConfig.load(path))

    def start_run(self, config: RunConfig, resume: str | Path | None = None, *, project_path: Path | None = None,
                  label: str = "", sweep=None, point=None):
        """Start ``config`` as a run of its project (the open one unless ``project_path`` says), or
        continue one from ``resume``; while another run trains it waits in the queue. Returns the
        RunSession, or None when it was queued."""
        path = Path(project_path) if project_path is not None else self.window.page.project_path
        label = label or f"{config.name} ({config.method.name})"
        item = QueuedRun(config, path, label, sweep, point)
        if self.running():
            if resume is not None:
                show_error(self.window, UserError("A run is already in progress",
                                                  "Resume this one when it has ended (or stop it first)."))
                return None
            self.queue.add(item)
            self.window.statusBar().showMessage(f"Queued: {label} starts when the run in progress ends.")
            return None
        return self._launch(item, resume)

    def _launch(self, item: QueuedRun, resume=None) -> RunSession:
        store = self.store if self.writable() else None
        project_id = None
        if store is not None and item.project_path is not None:
            project_id = store.ensure_project(item.config.name, item.project_path)
        session = RunSession(self.window.jobs, store, item.config, project_id=project_id, resume=resume,
                             label=item.label, queued=item, parent=self)
        session.event.connect(lambda event: self._session_event(session, event))
        session.ended.connect(lambda result: self._session_ended(session, result))
        session.crashed.connect(lambda error, trace: self._session_crashed(session, error, trace))
        self.session = session
        if self.runs is not None:
            self.runs.follow(session, show=item.sweep is None)
            self.window.page.tabs.setCurrentWidget(self.window.page.runs_holder)
        session.start()
        self.window.statusBar().showMessage(f"Starting: {item.label}…")
        self.changed.emit()
        self.run_started.emit(session)
        return session

    def _start_next(self) -> None:
        """The first waiting run starts, then leaves the queue (so it is never neither waiting nor running)."""
        if len(self.queue):
            self._launch(self.queue.items[0])
            self.queue.remove(0)

    # ---- a run's life ------------------------------------------------------------------------------

    def _shown(self) -> bool:
        """Whether the runs panel lists the project of the run in progress."""
        return self.runs is not None and self.session is not None and self.session.project_id is not None \
            and self.session.project_id == self.window.project_id

    def _session_event(self, session: RunSession, event) -> None:
        if isinstance(event, StatusEvent) and event.status in ("running", "resumed") and self._shown():
            if session.run_id and session.run_id not in self.runs.table.run_ids():
                self.runs.select_run(session.run_id)
            else:
                self.runs.refresh()
        if isinstance(event, (StatusEvent, FinishedEvent, FailedEvent)):
            self.window.statusBar().showMessage(f"Run {session.run_id[:8]}: {event.status}")
            if isinstance(event, StatusEvent) and event.status == "paused" and self._shown():
                self.runs.refresh()
        if isinstance(event, FailedEvent) and event.status == "failed":
            show_error(self.window, UserError(event.message, event.fix or "See the run's log."), event.traceback,
                       context=session.label)
        if isinstance(event, EvaluationEvent) and self._shown() and self.runs.table.selected_run_ids() == [session.run_id]:
            self.runs.evaluation.set_run(self.store, session.run_id)

    def _session_ended(self, session: RunSession, result) -> None:
        if self.runs is not None:
            if self.runs.monitor.session is session:
                self.runs.monitor.detach()
            if self.store is not None and result.run_id and self._shown():
                self.runs.select_run(result.run_id, reload=True)
        self.window.statusBar().showMessage(f"Run {result.run_id[:8]} {result.status} after {result.steps} steps")
        self.run_ended.emit(session, result)
        self.changed.emit()
        self._start_next()

    def _session_crashed(self, session: RunSession, error: Exception, trace: str) -> None:
        """The run did not start: the dialog and the app's log have it (the job's default); the run's log too."""
        if self.runs is not None and self.runs.monitor.session is session:
            self.runs.monitor.append_log("error", str(error))
            self.runs.monitor.status.setText("Did not start")
            self.runs.monitor.detach()
        self.run_ended.emit(session, None)
        self.changed.emit()
        self._start_next()

    # ---- the run the last session left unfinished -------------------------------------------------

    def offer_last_session(self) -> None:
        """Once the store is open: if the app last closed (or crashed) while a run trained, offer to
        resume that run from where it can go on."""
        store = self.store
        if store is None or store.readonly:
            return
        self.window.jobs.start(lambda ctx: _last_session(store), self._offer,
                               name="Looking for a run the last session left unfinished")

    def _offer(self, found) -> None:
        if found is None or found.resume is None or self.running():
            return
        project = found.project["name"] if found.project else "its project"
        box = QMessageBox(QMessageBox.Icon.Question, "Resume the interrupted run?",
                          f"Unlearn Studio closed while {run_label(found.run)} of “{project}” was training. "
                          f"It can go on from step {found.resume.step}, where its last checkpoint is.",
                          parent=self.window)
        box.setObjectName("resumeLastSessionDialog")
        resume = box.addButton("Resume it", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
        box.finished.connect(lambda _: box.clickedButton() is resume and self._resume_last(found))
        box.open()
        self.last_session_box = box

    def _resume_last(self, found) -> None:
        path = Path(found.project["path"]) if found.project and found.project.get("path") else None
        if path is not None and path.is_file() and path != self.window.page.project_path:
            self.window.open_project(path)
        self.resume_run(found.run["id"])

    # ---- actions on the selected run -------------------------------------------------------------

    def rerun(self, *, confirm: bool = True):
        run = self.selected()
        if run is None:
            return None
        config = self.store.run_config(run["id"])
        t = config.training
        length = f"{t.max_steps} steps" if t.max_steps is not None else f"{t.epochs:g} epochs"
        if confirm:
            waits = " It waits in the queue until the run in progress ends." if self.running() else ""
            answer = QMessageBox.question(
                self.window, "Re-run?", f"Start {run_label(run)} again with the same settings ({length}, "
                f"{config.method.name})? It is a new run; the earlier one stays as it is.{waits}")
            if answer != QMessageBox.StandardButton.Yes:
                return None
        return self.start_run(config, label=f"{run_label(run)} again")

    def clone_run(self):
        run = self.selected()
        return self.new_run(self.store.run_config(run["id"]), clone=True) if run else None

    def stop_run(self) -> None:
        if self.running() and self.runs is not None:
            self.runs.monitor.attach(self.session)
            self.runs.monitor.stop_and_save()

    def resume_run(self, run_id: str | None = None):
        run = self.store.run(run_id) if run_id else self.selected()
        if run is None:
            return None
        return self.start_run(self.store.run_config(run["id"]), resume=run["output_dir"],
                              label=f"{run_label(run)} (resumed)")

    def export_run(self):
        from unlearn_studio.gui.export_dialog import ExportDialog  # needs the ML libraries: after they load

        run = self.selected()
        if run is None:
            return None
        dialog = ExportDialog(self.store, run["id"], self.window.jobs, parent=self.window)
        dialog.open()
        return dialog

    def compare_runs(self) -> None:
        runs = self.runs.selected_runs()
        if len(runs) == 2 and self.runs.compare is not None:
            self.runs.compare.set_runs(self.store, runs[0]["id"], runs[1]["id"])
            self.runs.details.setCurrentWidget(self.runs.compare)

    def combine_adapters(self):
        from unlearn_studio.core.results.run_info import run_info  # reads checkpoints (torch): after it loads
        from unlearn_studio.gui.extsub_dialog import ExtSubDialog

        window = self.window
        if window.page.config is None or window.project_id is None:
            return None
        adapters = {}
        for run in self.store.runs(window.project_id):
            if run["status"] in USABLE:
                info = run_info(self.store, run["id"])
                if info.adapter_dir is not None:
                    adapters[run_label(run)] = info.adapter_dir
        folder = window.page.config.resolve_path(window.page.config.output.dir)
        suggested = next(folder / f"combined-{n}" for n in range(1, 1000) if not (folder / f"combined-{n}").exists())
        dialog = ExtSubDialog(window.jobs, self.store, window.project_id, window.page.config, adapters=adapters,
                              suggested_output=suggested, parent=window)
        dialog.combined.connect(lambda run_id: self.runs.select_run(run_id, reload=True))
        dialog.open()
        return dialog

    def delete_run(self, *, confirm: bool = True, delete_files: bool = False) -> bool:
        """Remove the selected runs from the store after a confirmation; files only when asked."""
        runs = self.runs.selected_runs()
        if not runs or not self.writable():
            return False
        if self.running() and any(r["id"] == self.session.run_id for r in runs):
            show_error(self.window, UserError("The run in progress cannot be deleted", "Stop or cancel it first."))
            return False
        if confirm:
            box = QMessageBox(QMessageBox.Icon.Question, "Delete run",
                              f"Delete {len(runs)} run{'s' if len(runs) > 1 else ''} from the project? Its metrics "
                              "and evaluation records are removed from the project store.",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self.window)
            box.setObjectName("deleteRunDialog")
            files = QCheckBox("Also delete the files on disk (adapter, checkpoints, evaluation):\n"
                              + "\n".join(r["output_dir"] or "–" for r in runs))
            box.setCheckBox(files)
            if box.exec() != QMessageBox.StandardButton.Yes:
                return False
            delete_files = files.isChecked()
        kept = self.delete_runs(runs, delete_files=delete_files)
        if kept:
            self.window.statusBar().showMessage("Kept (not created by Unlearn Studio as a run folder): "
                                                + ", ".join(kept))
        self.runs.refresh()
        self.runs._selection_changed()
        self.changed.emit()
        return True

    def delete_runs(self, runs: list[dict], *, delete_files: bool) -> list[str]:
        """Delete ``runs`` from the store (and their folders the app made, when asked); returns the
        folders that were kept because the app did not create them."""
        kept = []
        for run in runs:
            self.store.delete_run(run["id"])
            folder = Path(run["output_dir"] or "")
            # Only a folder the engine made (it carries the app's run marker) is ever removed.
            if delete_files and folder.is_dir() and not remove_own_folder(folder, "run"):
                kept.append(str(folder))
        return kept
