"""Checkpoints of a run: everything needed to continue it exactly where it was.

A checkpoint is a folder ``<run>/checkpoints/step-000050/`` holding

- ``adapter/``: the LoRA weights (PEFT ``save_pretrained``, safetensors),
- ``optimizer.pt`` and ``scheduler.pt``: their ``state_dict``s,
- ``rng.pt``: the python, numpy and torch (CPU and CUDA) RNG states,
- ``state.json``: step, run id, the data streams' positions, the method's own state, the
  configuration it was trained under, digests of its inputs (data files, model folder) and its
  health (the step's loss and gradient norm, the adapter's largest weight).

It is written into a hidden temporary folder and renamed into place, so a crash (or a full disk)
leaves either a whole checkpoint or none, and the earlier ones as they were; ``state.json`` is
written last, and a folder without it is never used. Only the newest ``keep`` checkpoints are
kept. The runner writes a checkpoint only when its weights, loss and gradient norm are finite and
sane, so every checkpoint is one a run can go on from.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.files import remove_own_folder, write_dir_atomically
from unlearn_studio.core.run.failures import SaveError
from unlearn_studio.core.run.sharded import save_adapter

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
ADAPTER = "adapter"
FORMAT = 2  # 2 adds config, inputs and health; format 1 checkpoints are still read
_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoint_step(folder: Path) -> int:
    """The step of a checkpoint folder, from its name (``step-000050`` -> 50)."""
    match = _NAME.match(Path(folder).name)
    if match is None:
        raise ValueError(f"{folder} is not named as a checkpoint")
    return int(match.group(1))


@dataclass
class Checkpoint:
    """A checkpoint found on disk (``state`` is its state.json)."""

    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def run_id(self) -> str:
        return str(self.state["run_id"])

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER

    @property
    def run_dir(self) -> Path:
        """The run's output folder (the checkpoint sits in its checkpoints/ folder)."""
        return self.path.parent.parent


# ---- writing -----------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        # As tensors and plain numbers, so that torch.load(weights_only=True) can read them.
        "numpy": (name, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, *, step: int, run_id: str, model, optimizer, scheduler,
                    streams: dict[str, dict[str, int]], keep: int, method_state: dict[str, Any] | None = None,
                    epochs_done: int = 0, config: dict[str, Any] | None = None,
                    inputs: dict[str, str | None] | None = None, health: dict[str, float] | None = None,
                    adapter_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the checkpoint of ``step`` and drop all but the newest ``keep``; returns its folder.
    ``epochs_done``: the epochs whose end the method has seen (one more ended at ``step`` when a
    stop cut the method's look at it short). ``adapter_state``: the adapter's weights gathered from
    the processes of a sharded run (sharded.py; the checkpoint then says it is "sharded"). A failed
    write (a full disk) raises SaveError naming the step, and leaves the earlier checkpoints as they
    were."""

    def fill(folder: Path) -> None:
        save_adapter(model, folder / ADAPTER, adapter_state)
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")
        torch.save(scheduler.state_dict(), folder / "scheduler.pt")
        torch.save(rng_state(), folder / "rng.pt")
        state = {"format": FORMAT, "step": step, "run_id": run_id, "streams": streams, "method": method_state or {},
                 "epochs_done": epochs_done, "config": config, "inputs": inputs or {}, "health": health or {}}
        if adapter_state is not None:
            state["sharded"] = True
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    root = run_dir / CHECKPOINTS
    final = root / checkpoint_name(step)
    try:
        # A step is written again only when a resumed run stops at its checkpoint step: the old one is ours.
        path = write_dir_atomically(final, fill, kind="checkpoint", overwrite=True)
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a failed write as a RuntimeError
        raise SaveError(f"the checkpoint of step {step}", final, exc) from exc
    prune(root, keep)
    return path


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints, and leftovers of interrupted writes."""
    for leftover in root.glob(".tmp-*"):
        remove_own_folder(leftover)
    for old in complete_checkpoints(root)[:-keep]:
        remove_own_folder(old, "checkpoint")


# ---- reading -----------------------------------------------------------------------------------


def complete_checkpoints(root: Path) -> list[Path]:
    """The whole checkpoints in ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _NAME.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def find_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The checkpoint at ``path``: a checkpoint folder, or a run folder (its newest checkpoint)."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise UserError(f"There is nothing to resume at {path}",
                        "Give a run's output folder or one of its checkpoints/step-… folders.")
    if not (path / STATE_FILE).is_file():
        found = complete_checkpoints(path / CHECKPOINTS)
        if not found:
            raise UserError(f"{path} holds no checkpoint to resume from",
                            "Give a run's output folder that has a checkpoints/ folder, or a checkpoint "
                            "folder (checkpoints/step-…); checkpoints are written every "
                            "training.checkpoint_every steps.")
        path = found[-1]
    elif path.parent.name != CHECKPOINTS:
        raise UserError(f"The checkpoint {path} is not inside a run's {CHECKPOINTS}/ folder",
                        "Resume from the run's output folder, or from a checkpoint where the run wrote it.")
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        int(state["step"]), str(state["run_id"]), dict(state["streams"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"The checkpoint {path} cannot be read ({exc})",
                        "Resume from an earlier checkpoint of the run.") from exc
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt", f"{ADAPTER}/adapter_config.json"):
        if not (path / name).is_file():
            raise UserError(f"The checkpoint {path} is incomplete: {name} is missing",
                            "Resume from an earlier checkpoint of the run.")
    return Checkpoint(path, state)


def load_training_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """The optimizer, scheduler and RNG states of a checkpoint (tensors on the CPU)."""
    def load(name: str) -> Any:
        return torch.load(checkpoint.path / name, map_location="cpu", weights_only=True)

    return {"optimizer": load("optimizer.pt"), "scheduler": load("scheduler.pt"), "rng": load("rng.pt")}
