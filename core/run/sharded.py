"""Training under DeepSpeed ZeRO and FSDP: the settings they need from the run, and the adapter
gathered whole before it is saved.

With ZeRO-3 or FSDP each process holds only a shard of every parameter, the LoRA weights
included, so ``save_pretrained`` on the main process alone would write a partial adapter (or
fail). Here every process takes part in gathering the trainable weights (a collective), and the
main process saves the full tensors with PEFT (``save_pretrained(state_dict=...)``), so the
adapter is the same files a single-process run writes. Only the adapter is gathered, never the
frozen base. ZeRO-2 shards optimizer states and gradients only: its weights are whole on every
process and are taken as they are.

FSDP version 1 is refused: PEFT finds the adapter's weights by module names, which FSDP 1's
wrappers change, and it then writes an empty adapter without a word (FSDP 2 keeps the names).
On CPU processes DeepSpeed needs the gloo backend named, or every process believes it is alone.
A sharded run's checkpoints hold the whole adapter but only the main process's share of the
optimizer state, so such a run is not resumed (``check_resume``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, InitProcessGroupKwargs
from torch.distributed.tensor import DTensor

from unlearn_studio.core.errors import UserError

SHARDED = (DistributedType.DEEPSPEED, DistributedType.FSDP)


def is_sharded(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type in SHARDED


def launched_sharded(environ: Mapping[str, str] = os.environ) -> bool:
    """accelerate launch asked for DeepSpeed or FSDP (it tells its processes through the environment)."""
    return any(environ.get(name, "").lower() in ("true", "1")
               for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"))


def force_cpu(device: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the accelerator is told cpu=True for a run on the CPU. accelerate then runs CPU
    processes as plain data parallel and drops a DeepSpeed launch without a word, so under
    DeepSpeed or FSDP it is not told (on a machine without a GPU it stays on the CPU anyway)."""
    return device == "cpu" and not launched_sharded(environ)


def process_group_kwargs(device: str, processes: int) -> list[InitProcessGroupKwargs]:
    """accelerate finds no backend for CPU processes under DeepSpeed; gloo is the one they have."""
    return [InitProcessGroupKwargs(backend="gloo")] if device == "cpu" and processes > 1 else []


def configure_for_run(accelerator: Accelerator, *, batch_size: int, grad_accum: int, max_grad_norm: float,
                      quantization: str = "none") -> None:
    """What DeepSpeed and FSDP need from the run before ``prepare``, or a UserError for a set-up
    that would save a wrong adapter or was never run. The run hands accelerate no data loader, so
    DeepSpeed learns the micro-batch size here; its accumulation and clipping must be the project's."""
    state = accelerator.state
    if quantization != "none" and is_sharded(accelerator):
        raise UserError(f"A quantized base (model.quantization = \"{quantization}\") is not supported under DeepSpeed "
                        "or FSDP here (their sharding of bitsandbytes' packed weights was never tested)",
                        "Launch data-parallel instead (accelerate launch --multi_gpu): every GPU holds the quantized "
                        "base, which is small; or set model.quantization = \"none\".")
    if accelerator.distributed_type == DistributedType.FSDP:
        if getattr(state.fsdp_plugin, "fsdp_version", 1) != 2:
            raise UserError("FSDP version 1 cannot save a LoRA adapter correctly (PEFT finds the adapter's weights "
                            "by module names, which FSDP 1 changes, and writes an empty adapter)",
                            "Use FSDP 2: fsdp_version: 2 in the accelerate config (docs/accelerate/fsdp.yaml).")
        return
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    config = state.deepspeed_plugin.deepspeed_config
    config["train_micro_batch_size_per_gpu"] = batch_size
    settings = (("gradient_accumulation_steps", grad_accum, "training.grad_accum"),
                ("gradient_clipping", max_grad_norm, "training.max_grad_norm"))
    for key, value, setting in settings:
        given = config.get(key, "auto")
        if given == "auto":
            config[key] = value
        elif float(given) != float(value):
            raise UserError(f"The DeepSpeed config sets {key} = {given}, the project's {setting} is {value}",
                            f"Make them equal: set {key}: {value} in the accelerate config (or \"auto\"), "
                            f"or {setting} = {given} in the project.")


def _is_zero3(params: list[torch.nn.Parameter]) -> bool:
    return any(hasattr(param, "ds_id") for param in params)


@contextlib.contextmanager
def _zero3_gathered(params: list[torch.nn.Parameter]) -> Iterator[None]:
    import deepspeed  # an optional package, present whenever ZeRO-3 partitioned these parameters

    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        yield


def gather_adapter(peft_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full fp32 copies, on the CPU, of the adapter's trainable weights, named as in
    ``peft_model.state_dict()``. Every process must call it, at the same point (a collective
    under ZeRO-3 and FSDP)."""
    named = [(name, param) for name, param in peft_model.named_parameters() if param.requires_grad]
    params = [param for _, param in named]
    gathering = _zero3_gathered(params) if _is_zero3(params) else contextlib.nullcontext()
    with gathering:
        full = {}
        for name, param in named:
            value = param.detach()
            if isinstance(value, DTensor):  # FSDP 2: a shard; all-gather it
                value = value.full_tensor()
            full[name] = value.to("cpu", torch.float32, copy=True)
    return full


def adapter_state(accelerator: Accelerator, peft_model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole adapter to save when the run is sharded (every process calls this), else None:
    ``save_pretrained`` reads the weights itself."""
    return gather_adapter(peft_model) if is_sharded(accelerator) else None


def save_adapter(peft_model, folder, state: dict[str, torch.Tensor] | None) -> None:
    """PEFT's adapter files in ``folder``, from ``state`` when the weights were gathered."""
    if state is None:
        peft_model.save_pretrained(folder)
    else:
        peft_model.save_pretrained(folder, state_dict=state)


def check_resume(accelerator: Accelerator, checkpoint_state: dict) -> None:
    """A UserError for a resume this engine cannot make exact: each process of a ZeRO or FSDP run
    holds its own shard of the optimizer's state, and a checkpoint keeps the main process's only."""
    if is_sharded(accelerator) or checkpoint_state.get("sharded"):
        raise UserError("A run under DeepSpeed ZeRO or FSDP cannot be resumed: its optimizer state is sharded over "
                        "the processes, and a checkpoint keeps the main process's share only",
                        "Start the run again, or use the checkpoint's adapter (checkpoints/step-…/adapter: it is "
                        "whole) as it is: evaluate or export it.")
