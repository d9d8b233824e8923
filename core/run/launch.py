"""The shell commands that run a project headless: alone, or data-parallel under accelerate."""

from __future__ import annotations

import shlex
from pathlib import Path


def run_command(project: str | Path, store: str | Path | None = None) -> str:
    """`unlearn-studio run PROJECT [--store DB]`."""
    command = f"unlearn-studio run {shlex.quote(str(project))}"
    if store is not None:
        command += f" --store {shlex.quote(str(store))}"
    return command


def accelerate_command(project: str | Path, store: str | Path | None = None, processes: int = 8) -> str:
    """The same run on ``processes`` GPUs of one machine (docs/SCALING.md has multi-node, DeepSpeed, FSDP)."""
    return (f"accelerate launch --multi_gpu --num_processes {processes} -m unlearn_studio.core.cli "
            + run_command(project, store).removeprefix("unlearn-studio "))
