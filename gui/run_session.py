"""One run started from the app: the engine on a thread of its own, its events as Qt signals.

The run is started by core's ``start_run`` (the same function the command line calls). The
session owns the run's ``RunControl`` (pause, resume, stop and save, cancel: all cooperative,
checked by the engine between steps) and learns the run id from the first event. Every engine
event reaches ``event`` on the GUI thread, already batched (≤ 20 Hz) by the engine.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from unlearn_studio.core.control import RunControl
from unlearn_studio.core.events import Event, FailedEvent, FinishedEvent, StepEvent
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui import collector
from unlearn_studio.gui.jobs import JobContext, Jobs


def _start_run(config: RunConfig, store, project_id: int | None, resume, ctx: JobContext):
    # start_run pulls in torch and transformers: imported on the run's thread, never at start-up.
    from unlearn_studio.core.run.start import start_run

    holding = False

    def listener(event: Event) -> None:
        nonlocal holding
        if isinstance(event, StepEvent) and not holding:
            holding = True  # training has begun: the model is loaded
            collector.hold()
        ctx.report(event)

    try:
        return start_run(config, store=store, project_id=project_id, listener=listener, control=ctx.control,
                         resume=resume)
    finally:  # however the run ends, also when the window closed and its report is dropped
        if holding:
            collector.release()


class RunSession(QObject):
    event = Signal(object)  # every engine event, in order
    ended = Signal(object)  # the RunResult (finished, stopped, cancelled or failed)
    crashed = Signal(object, str)  # an exception before the run started (bad input), and its traceback

    def __init__(self, jobs: Jobs, store, config: RunConfig, *, project_id: int | None = None,
                 resume: str | Path | None = None, label: str = "", queued=None, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.store = store
        self.config = config
        self.project_id = project_id
        self.resume_from = resume
        self.label = label or f"{config.method.name} run of {config.name}"
        self.queued = queued  # the QueuedRun it was started from (a sweep point's, say)
        self.control = RunControl()
        self.job = None
        self.run_id = ""
        self.status = "starting"
        self.result = None
        self.running = False

    def start(self) -> None:
        config, store, project_id, resume = self.config, self.store, self.project_id, self.resume_from
        self.running = True
        # The run trains on a thread of its own: the pool stays free for previews and comparisons.
        self.job = self.jobs.start(lambda ctx: _start_run(config, store, project_id, resume, ctx),
                                   self._on_finished, self._on_failed, on_item=self._on_event,
                                   name=("Resuming " if resume else "Training: ") + self.label,
                                   dedicated=True, control=self.control)

    # ---- requests (cooperative: the engine acts on them between steps) ---------------------------

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop_and_save(self) -> None:
        self.control.stop_and_save()

    def cancel(self) -> None:
        self.control.cancel()

    @property
    def paused(self) -> bool:
        return self.control.paused

    # ---- from the run's thread (on the GUI thread) -----------------------------------------------

    def _on_event(self, event: Event) -> None:
        if not self.run_id and event.run_id:
            self.run_id = event.run_id
        status = getattr(event, "status", None)
        if isinstance(status, str):
            self.status = status
        if isinstance(event, (FinishedEvent, FailedEvent)):
            self.status = event.status
        if self.job is not None and isinstance(event, StepEvent):
            self.job.context.progress(event.step, event.total_steps, f"step {event.step}", event.eta_s)
        self.event.emit(event)

    def _on_finished(self, result) -> None:
        self.running = False
        self.result = result
        self.run_id = self.run_id or result.run_id
        self.status = result.status
        self.ended.emit(result)

    def _on_failed(self, error: Exception, trace: str) -> None:
        """The run did not start (bad input is a UserError): the dialog and the app's log have it
        (the job's default); ``crashed`` puts it in the run's log too."""
        self.running = False
        self.status = "failed"
        self.crashed.emit(error, trace)
