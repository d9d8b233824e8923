"""Running a project: one ``RunConfig`` (and the method to run) in, a trained LoRA adapter and a
record of the run out.

``execute`` looks at the method's declared recipe. A method that trains itself (``Train``, with
an optional ``Finish``) runs as one training run: ``preparation`` checks and loads everything
before anything is written, then ``training_run`` keeps the record, drives the ``steps`` and
evaluates. A method that trains with other methods and combines the results (``TrainWith`` …
``Combine``) runs as a ``staged_run`` of such training runs. Either way bad input raises
``UserError`` before anything is written, and once the run has started every problem ends it
with a status and an event instead of an exception.

The loop works the same in the app (a worker thread), on the command line, and under
``accelerate launch``; events, store rows and files come from the main process only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from unlearn_studio.core.control import Cancelled, RunControl
from unlearn_studio.core.events import FailedEvent, Listener
from unlearn_studio.core.methods.base import TrainWith, UnlearningMethod
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.evaluation_hook import EvaluateFn
from unlearn_studio.core.run.preparation import MethodSpec, Prepared, prepare, resolve_method
from unlearn_studio.core.run.record import RunResult
from unlearn_studio.core.run.staged_run import StagedRun
from unlearn_studio.core.run.training_run import TrainingRun

NOT_STARTED = "Cancelled before the run started; nothing was written"


def execute(
    config: RunConfig,
    *,
    method: MethodSpec = None,
    store=None,
    project_id: int | None = None,
    project_file: str | os.PathLike | None = None,
    listener: Listener | None = None,
    control: RunControl | None = None,
    resume: str | os.PathLike | None = None,
    evaluate_fn: EvaluateFn | None = None,
) -> RunResult:
    """Run ``config`` to the end and say how it ended.

    ``method``: the method object (or class) to run; by default the registered method the
    project names. With a ``store`` the run is recorded in ``project_id``, or in the project of
    ``project_file`` (registered once the run starts, never for a refused one). ``resume`` is a
    checkpoint folder, or a run's output folder (its newest checkpoint): the same run continues,
    once the project is found to match it. ``evaluate_fn`` (see ``evaluation_hook``) runs before
    training (adapter off) and after it. A cancel during the preparation returns a "cancelled"
    result with no run id: nothing was written.
    """
    control = control or RunControl()
    chosen = resolve_method(config, method)
    try:
        if any(isinstance(stage, TrainWith) for stage in chosen.stages):
            staged = StagedRun(config, chosen, store=store, listener=listener, control=control,
                               evaluate_fn=evaluate_fn)
            return staged.run(project_id=project_id, project_file=project_file, resume=resume)
        prepared = prepare(config, chosen, store=store, resume=resume, should_stop=control.should_stop)
    except Cancelled:
        if listener is not None:
            listener(FailedEvent("", "cancelled", NOT_STARTED))
        return RunResult("", "cancelled", None, 0, None, NOT_STARTED)
    run = TrainingRun(prepared, store=store, listener=listener, control=control, evaluate_fn=evaluate_fn)
    return run.run(project_id=project_id, project_file=project_file)


@dataclass(frozen=True)
class RunCheck:
    """What a run of the project would be, once everything ``execute`` checks has passed."""

    method: UnlearningMethod
    stages: tuple[str, ...]
    total_steps: int
    trainable_parameters: int  # of the first training (each stage of a staged run has its own adapter)
    rows: dict[str, int]  # rows of each data role the first training reads
    templates: dict[str, str]


def check_run(config: RunConfig, *, method: MethodSpec = None, store=None,
              resume: str | os.PathLike | None = None) -> RunCheck:
    """Everything ``execute`` checks and loads before it writes anything (the model included), and
    nothing more: a UserError for what a run would refuse; nothing is written."""
    chosen = resolve_method(config, method)
    stages = tuple(stage.name for stage in chosen.stages)
    if any(isinstance(stage, TrainWith) for stage in chosen.stages):
        staged = StagedRun(config, chosen, store=store)
        prepared = staged.check(resume)
        steps = staged.total_steps
    else:
        prepared = prepare(config, chosen, store=store, resume=resume)
        steps = prepared.total_steps
    return RunCheck(chosen, stages, steps, *_first_training(prepared))


def _first_training(prepared: Prepared | None) -> tuple[int, dict[str, int], dict[str, str]]:
    if prepared is None:  # a staged run whose stages have all trained: it only combines
        return 0, {}, {}
    trainable = sum(param.numel() for param in prepared.model.parameters() if param.requires_grad)
    return (trainable, {role: item.n for role, item in prepared.data.items()},
            {role: item.template for role, item in prepared.data.items()})
