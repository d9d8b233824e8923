"""The adapter of a sharded run is gathered whole before it is saved: FSDP 2 on two CPU processes
(torch's fully_shard, gloo; accelerate runs FSDP only on GPUs) writes the same adapter as one
process doing the same steps, although each process held half of every LoRA weight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("fsdp2_worker.py")
pytestmark = pytest.mark.slow


def run(command: list[str], out: Path) -> dict:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*command, str(WORKER), str(out)], capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def test_fsdp2_saves_the_whole_adapter(tmp_path):
    sharded = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"],
                  tmp_path / "sharded")
    single = run([sys.executable], tmp_path / "single")
    assert sharded["param_type"] == "DTensor" and sharded["local_shape"][0] == 2  # rank 4 split in two
    torch.testing.assert_close(sharded["losses"], single["losses"], rtol=1e-5, atol=1e-6)
    got = load_file(tmp_path / "sharded" / "adapter" / "adapter_model.safetensors")
    expected = load_file(tmp_path / "single" / "adapter" / "adapter_model.safetensors")
    assert got.keys() == expected.keys() and len(got) == 3 * 2 * 4  # q, v, down x A, B x 4 layers
    for name, value in expected.items():
        assert got[name].shape == value.shape
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)
