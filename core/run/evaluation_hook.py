"""The evaluation a run does before and after training, through the project's ``evaluate_fn``.

The contract with the evaluation: ``evaluate_fn(model, tokenizer, phase, out_dir, *, progress,
should_stop)`` returns the phase's result (its ``aggregates`` and ``items_path``, or a plain dict
of numbers); ``progress`` takes ``EvaluationProgressEvent``s, which the run sends on with its own
id; once ``should_stop()`` is true the evaluation raises ``Cancelled`` between batches, and the
run decides what that means (before training: the run is cancelled; after it: the saved adapter
stays and the run has no "after" numbers).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unlearn_studio.core.control import RunControl
from unlearn_studio.core.events import EvaluationEvent, EvaluationProgressEvent
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.record import RunRecord

# evaluate_fn(model, tokenizer, phase, out_dir, *, progress=None, should_stop=None) -> result
EvaluateFn = Callable[..., Any]


def wanted(config: RunConfig, evaluate_fn: EvaluateFn | None, phase: str) -> bool:
    ev = config.evaluation
    return evaluate_fn is not None and ev.suite != "none" and bool(getattr(ev, phase))


def evaluate(evaluate_fn: EvaluateFn, record: RunRecord, control: RunControl, *, phase: str, model, tokenizer,
             adapter_off: bool = False, store_it: bool = True) -> Any:
    """Run one phase on ``model`` (its adapter switched off with ``adapter_off``) and record its
    numbers (in the store too unless ``store_it`` is false); ``Cancelled`` goes on up."""
    suite = record.config.evaluation.suite
    record.status("evaluating", phase)

    def progress(event: EvaluationProgressEvent) -> None:
        record.emit(dataclasses.replace(event, run_id=record.run_id, phase=event.phase or phase))

    out_dir = Path(record.output_dir) / "evaluation" / phase
    training = model.training
    model.eval()
    try:
        with model.disable_adapter() if adapter_off else contextlib.nullcontext():
            result = evaluate_fn(model, tokenizer, phase, out_dir, progress=progress, should_stop=control.should_stop)
    finally:
        model.train(training)
    aggregates = getattr(result, "aggregates", result)
    items_path = getattr(result, "items_path", None)
    if aggregates:
        aggregates = {key: float(value) for key, value in aggregates.items()}
        record.emit(EvaluationEvent(record.run_id, phase, suite, aggregates))
        if record.store is not None and store_it:
            record.store.add_evaluation(record.run_id, phase, suite, aggregates, str(items_path) if items_path else None)
    return result
