"""`unlearn-studio run` under `accelerate launch --use_deepspeed` with 2 CPU processes (gloo): ZeRO-2
and ZeRO-3 give the adapter one process gives with the same global batch, in the final adapter and
in the checkpoints (each gathered whole from the shards), and a sharded run's checkpoint is not
resumed. DeepSpeed is not a dependency: the test runs with the Python of an environment that has it,
UNLEARN_STUDIO_DEEPSPEED_PYTHON (deepspeed installed there beside this project), or this one if it
has deepspeed; otherwise it is skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from test_accelerate_launch import BIN, TOLERANCE, only_run, write_project

PER_PROCESS_BATCH = 2
DEEPSPEED_PYTHON = os.environ.get("UNLEARN_STUDIO_DEEPSPEED_PYTHON") or (
    sys.executable if importlib.util.find_spec("deepspeed") else None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(DEEPSPEED_PYTHON is None, reason="no Python with deepspeed "
                                 "(set UNLEARN_STUDIO_DEEPSPEED_PYTHON)")]


def run(command: list[str], cwd: Path, *, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_HOME": str(cwd / "hf_home")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=cwd, env=env, check=False)
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def launch(folder: Path, stage: int, *extra: str, expect: int = 0) -> subprocess.CompletedProcess:
    return run([DEEPSPEED_PYTHON, "-m", "accelerate.commands.launch", "--use_deepspeed", "--zero_stage", str(stage),
                "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--gradient_accumulation_steps", "1", "-m", "unlearn_studio.core.cli", "run", "project.toml",
                "--store", "store.db", *extra], folder, expect=expect)


def with_checkpoints(project: Path) -> None:
    text = project.read_text(encoding="utf-8")
    project.write_text(text.replace("[training]\n", "[training]\ncheckpoint_every = 2\nkeep_checkpoints = 2\n"),
                       encoding="utf-8")


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict:
    """The adapter of one process with the global batch."""
    folder = tmp_path_factory.mktemp("one")
    with_checkpoints(write_project(folder, 2 * PER_PROCESS_BATCH))
    run([str(BIN / "unlearn-studio"), "run", "project.toml", "--store", "store.db"], folder)
    return load_file(folder / "runs" / only_run(folder / "store.db")["id"] / "adapter" / "adapter_model.safetensors")


def assert_same_adapter(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        difference = float((got[name] - value).norm() / value.norm())
        assert difference < TOLERANCE, f"{name}: relative difference {difference:.2e}"


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_gives_the_single_process_adapter_and_whole_checkpoints(stage, single, tmp_path):
    with_checkpoints(write_project(tmp_path, PER_PROCESS_BATCH))
    launched = launch(tmp_path, stage)
    assert launched.stdout.count("finished after 4 steps") == 1
    run_dir = tmp_path / "runs" / only_run(tmp_path / "store.db")["id"]
    assert_same_adapter(load_file(run_dir / "adapter" / "adapter_model.safetensors"), single)
    checkpoint = run_dir / "checkpoints" / "step-000004"
    assert json.loads((checkpoint / "state.json").read_text())["sharded"] is True
    assert_same_adapter(load_file(checkpoint / "adapter" / "adapter_model.safetensors"), single)


def test_a_sharded_runs_checkpoint_is_not_resumed(tmp_path):
    with_checkpoints(write_project(tmp_path, PER_PROCESS_BATCH))
    launch(tmp_path, 2)
    run_dir = tmp_path / "runs" / only_run(tmp_path / "store.db")["id"]
    refused = run([str(BIN / "unlearn-studio"), "run", "project.toml", "--store", "store.db", "--resume",
                   str(run_dir / "checkpoints" / "step-000002")], tmp_path, expect=2)
    assert "cannot be resumed" in refused.stdout + refused.stderr
