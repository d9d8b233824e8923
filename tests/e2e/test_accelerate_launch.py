"""`unlearn-studio run` under `accelerate launch` with 2 CPU processes (gloo) gives the same adapter
as one process with the same global batch, and only the main process writes.

The data are demo rows whose answers all have the same number of tokens: data-parallel training
averages each process's mean loss, one process takes the mean over all answer tokens, and the
two are the same only when the processes see equally many answer tokens (docs/SCALING.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unlearn_studio.core.model.loading import load_tokenizer
from unlearn_studio.core.paths import demo_data_dir, demo_model_dir
from unlearn_studio.core.project.store import Store

BIN = Path(sys.executable).parent
ROWS_PER_ROLE = 8
PER_PROCESS_BATCH = 2
# fp32 all-reduce and summation order: the adapters agree to about 1e-6 relative; SGD keeps the
# update linear in the gradient (Adam's first steps amplify float noise in near-zero gradients).
TOLERANCE = 1e-4

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("accelerate", path=str(BIN)) is None, reason="accelerate CLI missing")]


def equal_length_rows(file: str, tokenizer) -> list[dict]:
    """ROWS_PER_ROLE rows of a demo QA file whose answers all tokenize to the same length."""
    by_length = defaultdict(list)
    for line in (demo_data_dir() / file).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_length[len(tokenizer(row["answer"], add_special_tokens=False)["input_ids"])].append(row)
    rows = max(by_length.values(), key=len)
    assert len(rows) >= ROWS_PER_ROLE, f"{file} has too few rows of one answer length"
    return rows[:ROWS_PER_ROLE]


def write_project(folder: Path, batch_size: int) -> Path:
    tokenizer = load_tokenizer(demo_model_dir())
    for role, file in (("forget", "forget10.jsonl"), ("retain", "retain.jsonl")):
        rows = equal_length_rows(file, tokenizer)
        (folder / f"{role}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    project = folder / "project.toml"
    project.write_text(
        'name = "data parallel"\n'
        '[model]\npath = "demo"\ndtype = "fp32"\ndevice = "cpu"\n'
        '[data.forget]\npath = "forget.jsonl"\ntemplate = "qa"\n'
        '[data.retain]\npath = "retain.jsonl"\ntemplate = "qa"\n'
        '[method]\nname = "grad_diff"\n'
        '[lora]\nr = 4\nalpha = 8\ndropout = 0.0\nroles = ["q", "v", "down"]\n'
        '[optimizer]\nname = "sgd"\nlr = 0.2\n'
        f'[training]\nmax_steps = 4\nbatch_size = {batch_size}\nmax_length = 64\nseed = 0\n'
        '[evaluation]\nsuite = "none"\n',
        encoding="utf-8",
    )
    return project


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def only_run(store: Path) -> dict:
    with Store.open(store, readonly=True) as opened:
        (row,) = opened.runs()
        return row


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    write_project(two, PER_PROCESS_BATCH)
    write_project(one, 2 * PER_PROCESS_BATCH)

    launched = run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "unlearn_studio.core.cli",
                    "run", "project.toml", "--store", "store.db"], cwd=two)
    run([str(BIN / "unlearn-studio"), "run", "project.toml", "--store", "store.db"], cwd=one)

    # Only the main process reports, records and writes: one run row, one output folder, one line.
    assert launched.stdout.count("finished after 4 steps") == 1
    parallel, single = only_run(two / "store.db"), only_run(one / "store.db")
    assert parallel["status"] == single["status"] == "finished"
    assert [p.name for p in (two / "runs").iterdir()] == [parallel["id"]]

    got = load_file(two / "runs" / parallel["id"] / "adapter" / "adapter_model.safetensors")
    expected = load_file(one / "runs" / single["id"] / "adapter" / "adapter_model.safetensors")
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        if "lora_B" in name:
            assert value.abs().max() > 0, f"{name} did not train"
        difference = float((got[name] - value).norm() / value.norm())
        assert difference < TOLERANCE, f"{name}: relative difference {difference:.2e}"
    with Store.open(two / "store.db", readonly=True) as opened, Store.open(one / "store.db", readonly=True) as other:
        losses = opened.metrics(parallel["id"], "loss/total")
        reference = other.metrics(single["id"], "loss/total")
    assert [step for _, step, _ in losses] == [1, 2, 3, 4]
    torch.testing.assert_close([v for *_, v in losses], [v for *_, v in reference], rtol=1e-4, atol=1e-5)
