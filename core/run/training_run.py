"""One training run from its start to its end: the method's ``Train`` stage (and its ``Finish``
stage, when it declares one) on a prepared run.

Start: the run's record (a new one, or the resumed run's), the method prepares itself, the
evaluation before training, and on resume the checkpoint's state. Then the step loop. End:
finished or stopped (the adapter saved, evaluated after training when finished), cancelled
(checkpoints kept) or failed (one message, one fix; a traceback only for what looks like a bug).
KeyboardInterrupt and SystemExit mark the run "interrupted" and go on up.
"""

from __future__ import annotations

import functools
import os

from unlearn_studio.core.control import CANCEL, STOP, Cancelled, RunControl
from unlearn_studio.core.events import Listener
from unlearn_studio.core.files import write_dir_atomically
from unlearn_studio.core.methods.base import Finish
from unlearn_studio.core.run.checkpoint import ADAPTER, load_training_state
from unlearn_studio.core.run.data import first_batches
from unlearn_studio.core.run.evaluation_hook import EvaluateFn, evaluate, wanted
from unlearn_studio.core.run.failures import SaveError, describe_failure
from unlearn_studio.core.run.preparation import Prepared
from unlearn_studio.core.run.record import RunRecord, RunResult
from unlearn_studio.core.run.resume import restore_method_and_rngs, restore_progress
from unlearn_studio.core.run.sharded import adapter_state, save_adapter
from unlearn_studio.core.run.steps import StepLoop, broadcast

PREPARE_BATCHES = 4  # batches per role handed to method.prepare


class TrainingRun:
    """A prepared run; ``run`` drives it from start to end and says how it ended."""

    def __init__(self, prepared: Prepared, *, store=None, listener: Listener | None = None,
                 control: RunControl | None = None, evaluate_fn: EvaluateFn | None = None):
        self.p = prepared
        acc = prepared.accelerator
        self.record = RunRecord(prepared.config, store, listener, main_process=acc.is_main_process,
                                broadcast=functools.partial(broadcast, acc))
        self.control = control or RunControl()
        self.evaluate_fn = evaluate_fn
        self.loop: StepLoop | None = None

    @property
    def step(self) -> int:
        return self.loop.step if self.loop is not None else 0

    def run(self, *, project_id: int | None = None, project_file: str | os.PathLike | None = None) -> RunResult:
        try:
            self.open(project_id, project_file)
            self.loop = StepLoop(self.p, self.record, self.control)
            outcome = self.train()
            return self.end(outcome)
        except BaseException as exc:  # noqa: BLE001 - every way a run can end is recorded
            return self.fail(exc)
        finally:
            if self.loop is not None:
                self.loop.token_counter.remove()
            self.record.close()

    def open(self, project_id: int | None, project_file: str | os.PathLike | None) -> None:
        plan = self.p.resume
        if plan is None:
            self.record.start(project_id=project_id, project_file=project_file)
            self.record.status("running", f"{self.p.total_steps} steps")
            self.started()
            return
        checkpoint = plan.checkpoint
        self.record.take_up(checkpoint.run_id, checkpoint.run_dir, replace_metrics_after=checkpoint.step,
                            config_changed=bool(plan.changed))
        self.record.status("resumed", f"from {checkpoint.path.name} (step {checkpoint.step})", step=checkpoint.step)
        changes = plan.describe_changes()
        if changes:
            self.record.log("info", f"Resumed with changed settings, in effect from step {checkpoint.step + 1}: "
                                    f"{changes}")
        self.started()

    def started(self) -> None:
        """What the run's log says about how it runs (precision, threads, trackers)."""
        for note in self.p.notes:
            self.record.log("info", note)
        self.record.start_tracking()

    # ---- from the start to the end of training ----------------------------------------------------

    def train(self) -> str:
        """Prepare, evaluate before, restore a checkpoint, then the steps; returns "finished", STOP or CANCEL."""
        p, loop, t = self.p, self.loop, self.p.config.training
        for role, item in p.data.items():
            if item.truncated:
                self.record.log("warning", f"{role}: {len(item.truncated)} example(s) cut to max_length "
                                           f"{t.max_length}, e.g. {item.truncated[0]}")
        plan = p.resume
        state = load_training_state(plan.checkpoint) if plan is not None else None
        if plan is not None:
            loop.scheduler = restore_progress(plan, p.config, model=p.model, optimizer=loop.optimizer,
                                              scheduler=loop.scheduler, streams=loop.streams,
                                              total_steps=p.total_steps, state=state)
            loop.step = loop.checkpoint_step = plan.checkpoint.step
            loop.last_checkpoint = plan.checkpoint.path
        loop.model.train()
        batches = first_batches(p.data, t.batch_size, p.tokenizer, PREPARE_BATCHES)
        device = p.accelerator.device
        try:
            p.method.prepare(loop.context, {role: [b.to(device) for b in items] for role, items in batches.items()})
        except Cancelled:
            return loop.request()
        if wanted(p.config, self.evaluate_fn, "before"):
            try:
                self.evaluate_before()
            except Cancelled:
                return CANCEL  # nothing was trained: a cancel, whatever was asked
        if plan is not None:
            restore_method_and_rngs(plan, p.method, state)
            stream = loop.epoch_stream
            loop.epochs_done = int(plan.checkpoint.state.get("epochs_done", stream.epoch if stream else 0))
        self.record.log("info", f"{p.method.title}: steps {loop.step + 1}-{p.total_steps}, "
                                f"{sum(x.numel() for x in loop.trainable):,} trainable parameters, data "
                                + ", ".join(f"{r} {d.n} rows ({d.template})" for r, d in p.data.items()))
        lora_plan = getattr(p.model, "lora_plan", None)  # attach_lora's: what LoRA adapts here, and why
        if lora_plan is not None:
            self.record.log("info", lora_plan.summary())
        return loop.train()

    def evaluate_before(self) -> None:
        """Before training, with the adapter off. A resumed run evaluates again (its base model's
        numbers usually come from the evaluation's cache), so that its after-training numbers are
        measured against them as in an uninterrupted run; the store keeps the first ones."""
        store = self.record.store
        resumed = self.p.resume is not None
        kept = resumed and store is not None and any(
            e["phase"] == "before" for e in store.evaluations(self.record.run_id))
        if self.p.accelerator.is_main_process:
            evaluate(self.evaluate_fn, self.record, self.control, phase="before", model=self.p.model,
                     tokenizer=self.p.tokenizer, adapter_off=True, store_it=not kept)
            self.record.status("running", "training", step=self.step)
        self.p.accelerator.wait_for_everyone()

    # ---- endings ----------------------------------------------------------------------------------

    def end(self, outcome: str) -> RunResult:
        loop = self.loop
        if outcome == CANCEL:
            return self.cancelled()
        if outcome == STOP:
            self.record.status("stopping", f"saving the adapter at step {loop.step}", step=loop.step)
            if loop.step > 0 and loop.checkpoint_step != loop.step:
                loop.save_checkpoint()
        adapter = self.save_adapter()
        status = "stopped" if outcome == STOP else "finished"
        if status == "finished" and wanted(self.p.config, self.evaluate_fn, "after"):
            try:
                self.evaluate_after()
            except Cancelled:
                status = "stopped"
                self.record.log("warning", f"The evaluation after training was cut short: the adapter of step "
                                           f"{loop.step} is saved in {adapter}, and the run has no after-training "
                                           "numbers. Evaluate the adapter later to get them.")
        return self.record.finished(status, adapter, loop.step)

    def save_adapter(self):
        """The Finish stage, if declared, then the adapter into <run>/adapter."""
        p, loop = self.p, self.loop
        for stage in p.method.stages:
            if isinstance(stage, Finish):
                p.method.finalize_adapter(p.model)
                self.record.log("info", f"{p.method.title}, stage {stage.name}: done on the adapter of step "
                                        f"{loop.step}")
        loop.check_weights()
        adapter = self.record.output_dir / ADAPTER
        state = adapter_state(self.p.accelerator, p.model)  # every process: a collective when sharded
        if self.p.accelerator.is_main_process:
            try:
                # Written again when a stopped run is resumed and ends: the run's own adapter.
                write_dir_atomically(adapter, lambda folder: save_adapter(p.model, folder, state), kind="adapter",
                                     overwrite=True)
            except (OSError, RuntimeError) as exc:
                raise SaveError(f"the adapter of step {loop.step}", adapter, exc) from exc
        self.p.accelerator.wait_for_everyone()
        self.record.log("info", f"Adapter saved to {adapter}")
        if self.record.store is not None:
            self.record.store.add_artifact(self.record.run_id, "adapter", adapter)
        return adapter

    def evaluate_after(self) -> None:
        if self.p.accelerator.is_main_process:
            evaluate(self.evaluate_fn, self.record, self.control, phase="after", model=self.p.model,
                     tokenizer=self.p.tokenizer)
        self.p.accelerator.wait_for_everyone()

    def cancelled(self) -> RunResult:
        loop = self.loop
        last = loop.last_checkpoint
        where = f"; its checkpoints are kept in {last.parent}" if last is not None else ""
        if last is not None:
            fix = f"Resume the run from its last checkpoint, {last.name}, or start it again."
        else:
            fix = ("Start the run again: no checkpoint had been written (one is written every "
                   "training.checkpoint_every steps).")
        return self.record.cancelled(loop.step, f"Cancelled at step {loop.step}{where}", fix)

    def fail(self, exc: BaseException) -> RunResult:
        """Record how the run broke; KeyboardInterrupt and SystemExit go on up, and so does anything
        that broke before the run had a record."""
        if not self.record.run_id:
            raise exc
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.record.interrupted(self.step)
            raise exc
        last = self.loop.last_checkpoint if self.loop is not None else None
        if last is None and self.p.resume is not None:
            last = self.p.resume.checkpoint.path
        message, fix, trace = describe_failure(exc, step=self.step, last_checkpoint=last,
                                               device=self.p.accelerator.device)
        return self.record.failed(self.step, message, fix, trace)
