"""A finished GradDiff run on the demo, trained once per test session and shared by the compare and
export tests (core and GUI), plus a way to add hand-made runs that reuse its config.

Ten steps at a high learning rate on the first forget person: enough for the forget answers to
change under greedy decoding while general text keeps its continuation (checked by the tests).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file

from unlearn_studio.core.paths import projects_dir
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store import Store

_cache: dict[str, TrainedRun] = {}


@dataclass(frozen=True)
class TrainedRun:
    store_path: Path
    run_id: str
    adapter_dir: Path
    config: RunConfig


def demo_config(output_dir: Path) -> RunConfig:
    config = RunConfig.load(projects_dir() / "grad_diff.toml")
    config.training.max_steps = 10
    config.training.batch_size = 4
    config.training.checkpoint_every = 1000
    config.optimizer.lr = 5e-3
    config.data["forget"].max_rows = 6  # one person: every forget answer is about them
    config.data["retain"].max_rows = 24
    config.evaluation.suite = "none"
    config.output.dir = str(output_dir)
    return config


def trained_run(tmp_path_factory) -> TrainedRun:
    """The session's finished run (trained on first use)."""
    if "run" not in _cache:
        from unlearn_studio.core.run.runner import execute

        root = tmp_path_factory.mktemp("trained_run")
        config = demo_config(root / "runs")
        store_path = root / "store.db"
        with Store.open(store_path) as store:
            result = execute(config, store=store)
        assert result.status == "finished", result.error
        _cache["run"] = TrainedRun(store_path, result.run_id, result.adapter_dir, config)
    return _cache["run"]


def add_run(store: Store, config: RunConfig, folder: Path, *, status: str = "finished",
            adapter_from: Path | None = None, scale_b: float = 1.0) -> str:
    """Record a run whose adapter is a copy of ``adapter_from`` with every lora_B scaled by
    ``scale_b`` (0: an all-zero adapter); without ``adapter_from`` the run has no adapter."""
    project_id = store.ensure_project(config.name, folder / "project.toml")
    run_id = store.start_run(project_id, config, folder)
    store.set_output_dir(run_id, folder / run_id)
    if adapter_from is not None:
        adapter = folder / run_id / "adapter"
        shutil.copytree(adapter_from, adapter)
        weights = load_file(adapter / "adapter_model.safetensors")
        scaled = {k: (v * scale_b if "lora_B" in k else v).contiguous() for k, v in weights.items()}
        save_file(scaled, adapter / "adapter_model.safetensors", metadata={"format": "pt"})
        store.add_artifact(run_id, "adapter", adapter)
    store.set_status(run_id, status)
    return run_id
