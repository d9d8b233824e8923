"""A run that left a usable LoRA adapter, read from the project store: what the comparison panel
and the export need to know about it (config, adapter folder, method), checked up front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.checkpoint import ADAPTER

USABLE_STATUSES = ("finished", "stopped")  # the runner saves the final adapter for these two
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_STATUS_WORDS = {"failed": "failed", "cancelled": "was cancelled", "interrupted": "was interrupted",
                 "running": "is still running", "paused": "is paused", "queued": "is queued"}


@dataclass(frozen=True)
class FinishedRun:
    run_id: str
    row: dict  # the store's runs row
    config: RunConfig
    adapter_dir: Path
    method_title: str  # e.g. "GradDiff"
    method_summary: str
    method_paper: str

    @property
    def short_id(self) -> str:
        return self.run_id[:8]

    @property
    def model_name(self) -> str:
        """The base model as the project names it: "demo", a folder's name, or a hub id."""
        path = self.config.model.path
        return path if self.config.model.is_demo else Path(path).name or path

    @property
    def label(self) -> str:
        """"run 1a2b3c4d GradDiff" — short enough for a pane header."""
        return f"run {self.short_id} {self.method_title}"

    @classmethod
    def from_store(cls, store, run_id: str) -> FinishedRun:
        """The run ``run_id`` with its adapter; UserError when it has none to use (yet)."""
        row = store.run(run_id)
        status = row["status"]
        if status not in USABLE_STATUSES:
            raise UserError(
                f"Run {run_id[:8]} {_STATUS_WORDS.get(status, f'is {status}')}, so it has no final adapter",
                "Pick a run that finished (or was stopped and saved); a running run can be compared "
                "once it ends." if status in ("running", "paused", "queued")
                else "Pick a run that finished, or resume this one from its last checkpoint.",
            )
        config = store.run_config(run_id)
        adapter_dir = _adapter_dir(store, row)
        missing = [name for name in ADAPTER_FILES if not (adapter_dir / name).is_file()]
        if missing:
            raise UserError(
                f"The adapter of run {run_id[:8]} is missing: {adapter_dir} has no {', '.join(missing)}",
                "The run's output folder was moved or deleted; restore it, or train the run again.",
            )
        title, summary, paper = _method_facts(config.method.name)
        return cls(run_id, row, config, adapter_dir, title, summary, paper)


def _adapter_dir(store, row: dict) -> Path:
    """The newest adapter artifact the run recorded, else <output_dir>/adapter."""
    adapters = [a for a in store.artifacts(row["id"]) if a["kind"] == "adapter"]
    if adapters:
        return Path(adapters[-1]["path"])
    if not row["output_dir"]:
        raise UserError(f"Run {row['id'][:8]} has no output folder in the project store",
                        "Train the run again; its files were never written.")
    return Path(row["output_dir"]) / ADAPTER


def _method_facts(name: str) -> tuple[str, str, str]:
    """Title, summary and paper of a method; a method no longer installed keeps its name."""
    try:
        cls = get_method(name)
    except UserError:
        return name, "", ""
    return cls.title, cls.summary, cls.paper
