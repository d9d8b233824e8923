"""What the user is told when a run breaks: one message (what went wrong, where), one fix (what to
do), and a traceback only for what looks like a bug.

Bad input is a ``UserError`` and speaks for itself. The faults a run meets while it trains each
get their own wording: numbers that stopped being finite or sane, memory that ran out, a disk
that filled up while something was being saved.
"""

from __future__ import annotations

import errno
import sqlite3
import traceback
from pathlib import Path

import torch

from unlearn_studio.core.errors import UserError

OOM_FIX = ("Use a smaller training.batch_size (raise training.grad_accum to keep the effective batch), "
           "a shorter training.max_length, model.dtype = \"bf16\" (or training.mixed_precision = \"bf16\"), "
           "or fewer LoRA targets (lora.roles, lora.layers).")
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class NonFiniteError(Exception):
    """A loss term or the gradient norm stopped being a finite number, or the adapter's weights
    stopped being finite or sane (``what`` names which)."""

    def __init__(self, what: str, value: float, step: int):
        self.what, self.value, self.step = what, value, step
        super().__init__(f"{what} is {value:.4g} at step {step}")


class SaveError(Exception):
    """Writing ``what`` (the checkpoint of step N, the adapter, the run's record) failed; ``cause``
    is the error the file system gave."""

    def __init__(self, what: str, path: Path, cause: BaseException):
        self.what, self.path, self.cause = what, Path(path), cause
        super().__init__(f"Could not write {what} to {path}: {cause}")


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def is_disk_full(exc: BaseException) -> bool:
    """The disk (or the user's quota) is full: an OSError saying so, torch's own writer failing
    (it reports a full disk as a RuntimeError from its zip writer), or SQLite's "disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        return "disk is full" in str(exc) or "disk I/O error" in str(exc)
    if isinstance(exc, RuntimeError):
        text = str(exc)
        return "file write failed" in text or "PytorchStreamWriter failed" in text
    return False


def explain_failure(exc: BaseException, where: str = "") -> tuple[str, str, str]:
    """(what went wrong, what to do, traceback) for an exception that ended a run: a UserError
    speaks for itself; anything else is a bug, with its traceback. ``where``: e.g. " at step 5"."""
    if isinstance(exc, UserError):
        return exc.problem, exc.fix, ""
    return (f"{type(exc).__name__}{where}: {exc}", "This looks like a bug; the traceback below says where it happened.",
            "".join(traceback.format_exception(exc)))


def save_failure(exc: SaveError, kept: str) -> tuple[str, str]:
    """(message, fix) for a write that failed; ``kept`` says what is still there to go on from."""
    cause = exc.cause
    if is_disk_full(cause):
        return (f"Could not write {exc.what}: the disk holding {exc.path.parent} is full",
                f"Free some disk space there (or choose another output.dir), then {kept}")
    reason = getattr(cause, "strerror", None) or str(cause)
    return (f"Could not write {exc.what} to {exc.path}: {reason}",
            f"Check that the folder can be written to, then {kept}")


def describe_failure(exc: BaseException, *, step: int, last_checkpoint: Path | None,
                     device: object) -> tuple[str, str, str]:
    """(message, fix, traceback) for anything that ended a started run at ``step`` (the last step
    that was completed); ``last_checkpoint`` is the newest good checkpoint, if any."""
    resume = (f"resume from the last good checkpoint, {last_checkpoint.name} ({last_checkpoint})"
              if last_checkpoint else "start the run again (no checkpoint had been written yet)")
    if isinstance(exc, NonFiniteError):
        fix = ("Lower the learning rate (optimizer.lr, e.g. to a tenth) and check the data for empty or unusual "
               f"rows; bf16 is steadier than fp16. Then {resume}: the new learning rate and schedule take "
               "effect when it resumes.")
        return str(exc), fix, ""
    if isinstance(exc, SaveError):
        message, fix = save_failure(exc, resume + ".")
        return message, fix, ""
    if is_disk_full(exc):
        return (f"The disk filled up after step {step}: {exc}",
                f"Free some disk space (or choose another output.dir), then {resume}.", "")
    if is_oom(exc):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return f"Out of memory at step {step + 1} on {device}", OOM_FIX, ""
    return explain_failure(exc, f" at step {step + 1}")


def failure_record(message: str, fix: str, trace: str) -> str:
    """The error text a failed run keeps in the store."""
    return f"{message}\nWhat to do: {fix}" + (f"\n{trace}" if trace else "")
