"""What the app needs to offer resuming a run: which runs can be resumed (and from where), the run
the last session left interrupted (with its project), and a run's whole metric history.

A run can be resumed when it ended without finishing (interrupted, cancelled, failed or stopped)
and its folder still holds something to go on from: a checkpoint, or for a staged run (Ext-Sub)
its record of the stages with a stage that finished or has a checkpoint. What to pass to the
runner as ``resume`` is the run's folder, for either kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from unlearn_studio.core.run.checkpoint import CHECKPOINTS, checkpoint_step, complete_checkpoints
from unlearn_studio.core.run.staged_run import STAGES_DIR, STAGES_FILE

RESUMABLE = ("interrupted", "cancelled", "failed", "stopped")


@dataclass(frozen=True)
class ResumePoint:
    """Where a run goes on from: ``folder`` is what to resume (the run's output folder); ``step`` the
    last step it keeps (the run's own count: a staged run's finished stages included);
    ``checkpoint`` the checkpoint folder it continues from (None: a staged run that starts its next
    stage afresh)."""

    run_id: str
    folder: Path
    step: int
    checkpoint: Path | None


def resume_point(run: dict) -> ResumePoint | None:
    """Where ``run`` (a row of the store) can be resumed from, or None when it cannot: it finished,
    it is still going, or its folder holds nothing to go on from (a run cancelled before its first
    checkpoint starts again instead)."""
    if run.get("status") not in RESUMABLE or not run.get("output_dir"):
        return None
    folder = Path(run["output_dir"])
    if (folder / STAGES_FILE).is_file():
        return _staged_point(run["id"], folder)
    found = complete_checkpoints(folder / CHECKPOINTS)
    if not found:
        return None
    return ResumePoint(run["id"], folder, checkpoint_step(found[-1]), found[-1])


def _staged_point(run_id: str, folder: Path) -> ResumePoint | None:
    try:
        stages = json.loads((folder / STAGES_FILE).read_text(encoding="utf-8")).get("stages", {})
    except (OSError, ValueError, AttributeError):
        return None
    step, checkpoint, kept = 0, None, False
    for record in stages.values():
        if record.get("status") == "finished":
            step, kept = step + int(record.get("steps") or 0), True
            continue
        found = complete_checkpoints(Path(record.get("output_dir") or "") / CHECKPOINTS)
        if found:
            step, checkpoint, kept = step + checkpoint_step(found[-1]), found[-1], True
        break
    return ResumePoint(run_id, folder, step, checkpoint) if kept else None


def resumable_runs(store, project_id: int | None = None) -> list[ResumePoint]:
    """The runs of the store (or of one project) that can be resumed, oldest first."""
    return [point for run in store.runs(project_id) if (point := resume_point(run)) is not None]


@dataclass(frozen=True)
class InterruptedRun:
    """The run the last session left unfinished: its store row, its project's row (the project
    file to open is ``project["path"]``) and where it resumes from (None: nothing to go on from)."""

    run: dict
    project: dict | None
    resume: ResumePoint | None


def last_session_interrupted(store) -> InterruptedRun | None:
    """The run the last session was running when it was killed or crashed, if any: the store's
    most recently started run, when its status is "interrupted" (a writer marks the runs it finds
    still "running" or "paused" so when it opens the store)."""
    started = [run for run in store.runs() if run.get("started")]
    if not started:
        return None
    # Of two started in one millisecond, the later one (runs come in the order they were created).
    _, last = max(enumerate(started), key=lambda pair: (pair[1]["started"], pair[0]))
    if last["status"] != "interrupted":
        return None
    last = _recipe_of(last, started)
    project = next((p for p in store.projects() if p["id"] == last["project_id"]), None)
    return InterruptedRun(last, project, resume_point(last))


def _recipe_of(run: dict, runs: list[dict]) -> dict:
    """The staged run that ``run`` is a stage of (its folder is in that run's stages/), or ``run``."""
    folder = Path(run.get("output_dir") or "")
    if folder.parent.name != STAGES_DIR:
        return run
    return next((other for other in runs if other.get("output_dir") and Path(other["output_dir"]) == folder.parent.parent),
                run)
