"""One LoRA training step of the demo model under torch FSDP 2 on CPU processes (gloo), then the
adapter gathered and saved as the runner does under FSDP (core/run/sharded.py). accelerate cannot
run FSDP on CPU processes, so torch's own ``fully_shard`` stands in for it; the gathering and saving
are the runner's. Started by tests/e2e/test_sharded_save.py:

    torchrun --nproc_per_node 2 tests/e2e/fsdp2_worker.py OUT       (sharded)
    python tests/e2e/fsdp2_worker.py OUT                            (one process, the reference)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from unlearn_studio.core.model.loading import attach_lora, load_model
from unlearn_studio.core.paths import demo_model_dir
from unlearn_studio.core.run.sharded import gather_adapter, save_adapter

STEPS = 2


def main(out: Path) -> None:
    torch.set_num_threads(1)
    sharded = "WORLD_SIZE" in os.environ
    if sharded:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if sharded else 0
    torch.manual_seed(0)
    model = attach_lora(load_model(demo_model_dir(), device="cpu", dtype="fp32").model, r=4, alpha=8,
                        roles=["q", "v", "down"])
    with torch.no_grad():  # lora_B starts at 0; non-zero values make lora_A train from the first step
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.linspace(-0.05, 0.05, param.numel()).reshape(param.shape))
    if sharded:
        for layer in model.base_model.model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    trainable = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    ids = torch.arange(3, 35).reshape(2, 16)  # the same batch on every process: the mean gradient is one process's
    losses = []
    for _ in range(STEPS):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    state = gather_adapter(model)
    if rank == 0:
        save_adapter(model, out / "adapter", state)
        shards = [type(p).__name__ for p in trainable][:1]
        (out / "report.json").write_text(json.dumps({"losses": losses, "param_type": shards[0],
                                                     "local_shape": list(trainable[0].to_local().shape)
                                                     if isinstance(trainable[0], DTensor) else None}))
    if sharded:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
