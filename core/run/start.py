"""Starting a run: the one function the command line and the app both call.

It builds the run's evaluation (before and after training, unless the project's suite is "none")
and hands everything to the runner; the result carries the evaluation's numbers, so that the CLI
can print the before/after table and the app can show it without evaluating again.
"""

from __future__ import annotations

import os

from unlearn_studio.core.control import RunControl
from unlearn_studio.core.evaluation.run_evaluation import RunEvaluator
from unlearn_studio.core.events import Listener
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.preparation import MethodSpec, check_files
from unlearn_studio.core.run.runner import RunResult, execute


def start_run(config: RunConfig, *, method: MethodSpec = None, store=None, project_id: int | None = None,
              project_file: str | os.PathLike | None = None, listener: Listener | None = None,
              control: RunControl | None = None, resume: str | os.PathLike | None = None) -> RunResult:
    """Run ``config`` to its end (see ``runner.execute``) with the project's evaluation."""
    check_files(config)  # the evaluation reads the same files: the project's own words come first
    evaluator = RunEvaluator(config) if config.evaluation.suite != "none" else None
    result = execute(config, method=method, store=store, project_id=project_id, project_file=project_file,
                     listener=listener, control=control, resume=resume, evaluate_fn=evaluator)
    result.evaluations = dict(evaluator.results) if evaluator is not None else {}
    return result
