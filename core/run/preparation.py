"""Everything a training run checks and loads before anything is written.

``prepare`` takes a project's configuration (and the method to run) to a ``Prepared`` run: the
method with checked parameters, every data role read and tokenized, the model loaded with a
fresh LoRA adapter (or the checkpoint's, when resuming), the accelerator and the step count. Bad
input raises ``UserError`` here, so that a refused run leaves no store row, no folder and no
change to a run it was asked to resume. ``unlearn-studio check`` runs the same preparation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed

from unlearn_studio.core.control import Cancelled
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import TrainWith, UnlearningMethod, check_stages
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.model import loading as models
from unlearn_studio.core.model.memory_savers import enable_gradient_checkpointing
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.checkpoint import find_checkpoint
from unlearn_studio.core.run.data import RoleData, load_roles, steps_per_epoch, tokenize_roles
from unlearn_studio.core.run.precision import PrecisionChoice, choose_precision
from unlearn_studio.core.run.resume import ResumePlan, check_checkpoint_weights, input_digests, plan_resume
from unlearn_studio.core.run.sharded import check_resume, configure_for_run, force_cpu, process_group_kwargs
from unlearn_studio.core.run.threads import apply_threads, choose_threads
from unlearn_studio.core.run.tracking import check_trackers

MethodSpec = UnlearningMethod | type[UnlearningMethod] | None


@dataclass
class Prepared:
    """A training run that passed every check: what ``TrainingRun`` needs to start."""

    config: RunConfig
    method: UnlearningMethod
    data: dict[str, RoleData]
    accelerator: Accelerator
    model: Any  # PeftModel
    tokenizer: Any
    total_steps: int
    epoch_role: str  # the role whose passes count as epochs
    inputs: dict[str, str | None]  # digests of the data files and the model folder
    resume: ResumePlan | None
    notes: list[str] = field(default_factory=list)  # lines for the run's log: precision, threads


def resolve_method(config: RunConfig, method: MethodSpec = None) -> UnlearningMethod:
    """The method object to run: ``method`` itself, an instance of ``method`` (a class) with the
    project's parameters, or the registered method the project names (parameters are checked)."""
    if method is None:
        method = get_method(config.method.name)
    if isinstance(method, type):
        method = method(config.method.params)
    check_stages(method.title, method.stages)
    return method


def check_project(config: RunConfig, method: UnlearningMethod) -> None:
    """The checks that need no file: the configuration, the method's data roles, LoRA on."""
    config.validate()
    method.check_roles(set(config.data))
    if not config.lora.enabled:
        raise UserError(f"{method.title} trains a LoRA adapter, but lora.enabled is false",
                        "Set lora.enabled = true in the project file.")


def _stop_point(should_stop: Callable[[], bool] | None) -> None:
    """Between the long parts of the preparation: end it if the user already cancelled."""
    if should_stop is not None and should_stop():
        raise Cancelled("the run was cancelled while it was being prepared")


def make_accelerator(config: RunConfig, device: str, precision: PrecisionChoice) -> Accelerator:
    """The run's accelerator, with the chosen mixed precision, configured for DeepSpeed or FSDP
    when the launcher asked for them (a UserError for a set-up that would save a wrong adapter)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        # accelerate keeps process-wide state, and the app runs many runs in one process, each
        # with its own device and precision; a single process can safely start it afresh.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    t = config.training
    try:
        accelerator = Accelerator(mixed_precision=precision.mixed_precision, gradient_accumulation_steps=t.grad_accum,
                                  cpu=force_cpu(device), kwargs_handlers=process_group_kwargs(device, world))
    except ValueError as exc:
        raise UserError(f"Mixed precision {precision.mixed_precision} ({precision.reason}) cannot be used on "
                        f"{device}: {exc}",
                        "Set training.mixed_precision = \"no\" (or \"bf16\"), or choose another "
                        "model.device.") from exc
    configure_for_run(accelerator, batch_size=t.batch_size, grad_accum=t.grad_accum, max_grad_norm=t.max_grad_norm,
                      quantization=config.model.quantization)
    return accelerator


def total_steps(config: RunConfig, method: UnlearningMethod, data: dict[str, RoleData], world: int) -> tuple[int, str]:
    """Optimizer steps of the run, and the role whose passes count as epochs."""
    t = config.training
    reference = method.roles.required[0] if method.roles.required else next(iter(data), "")
    if t.max_steps is not None:
        return t.max_steps, reference
    if not reference:
        raise UserError(f"{method.title} uses no data set, so training.epochs has no meaning",
                        "Set training.max_steps instead of training.epochs.")
    micro_steps = t.epochs * steps_per_epoch(data[reference].n, t.batch_size, world)
    return max(1, math.ceil(micro_steps / t.grad_accum)), reference


def check_weights_finite(model: torch.nn.Module, source: str) -> None:
    """Refuse base weights that hold NaN or infinity: training on them can only give NaN, and
    no learning rate helps. One reduction per tensor and one wait for the device. Under DeepSpeed
    ZeRO-3 the base loads partitioned: each process looks at its own shard (``ds_tensor``)."""
    local = ((name, getattr(param, "ds_tensor", param)) for name, param in model.named_parameters())
    named = [(name, param) for name, param in local if param.is_floating_point() and param.numel()]
    if not named:
        return
    extremes = torch.stack([torch.stack(torch.aminmax(param.detach())).float() for _, param in named])
    finite = torch.isfinite(extremes).all(dim=1).tolist()
    if all(finite):
        return
    bad = [name for (name, _), ok in zip(named, finite, strict=True) if not ok]
    raise UserError(f"The weights of the model '{source}' hold NaN or infinite values (in {len(bad)} tensor(s), "
                    f"e.g. {bad[0]}), so no training can start from them",
                    "The model's files are damaged or come from a training that diverged: use another copy of the "
                    "model (its original download). Lowering the learning rate does not help.")


def _role_names(config: RunConfig, method: UnlearningMethod) -> list[str]:
    return [*method.roles.required, *(r for r in method.roles.optional if r in config.data)]


def check_files(config: RunConfig) -> None:
    """The model and every data file the project names exist (or the model is a hub id the project
    may download): a UserError that says where relative paths start, before any other check
    looks at them with less to say."""
    config.model_source()
    for role in config.data:
        config.resolve_data_path(role)


def check_data(config: RunConfig, method: UnlearningMethod) -> dict[str, RoleData]:
    """Every role the method reads, checked to exist and loaded strictly (a bad row is a UserError)."""
    roles = _role_names(config, method)
    for role in roles:
        config.resolve_data_path(role)
    return load_roles(config, roles, method)


def prepare(config: RunConfig, method: UnlearningMethod, *, store=None, resume: str | os.PathLike | None = None,
            should_stop: Callable[[], bool] | None = None) -> Prepared:
    """Check and load everything; a UserError for bad input, Cancelled if ``should_stop`` turns true
    between the long parts. Nothing is written."""
    if any(isinstance(stage, TrainWith) for stage in method.stages):
        raise TypeError(f"{method.title} trains in stages of other methods; run it with runner.execute")
    check_project(config, method)
    checkpoint = find_checkpoint(resume) if resume is not None else None
    if checkpoint is not None and store is not None:
        try:
            store.run(checkpoint.run_id)
        except UserError:
            raise UserError(f"The checkpoint {checkpoint.path} belongs to run {checkpoint.run_id}, "
                            f"which is not in the project store {store.path}",
                            "Resume with the store the run was started with (--store), or without one.") from None
    source = config.model_source()
    check_trackers(config)
    # The model's config first (a meta-device build, no weights): a model that cannot be trained
    # here (an encoder, an unknown architecture) is refused before the data is read.
    models.describe_model_folder(source, dtype=config.model.dtype, device=config.model.device,
                                 trust_remote_code=config.model.trust_remote_code,
                                 allow_network=config.model.allow_network)
    data = check_data(config, method)
    inputs = input_digests(config, list(data))
    plan = plan_resume(config, checkpoint, inputs) if checkpoint is not None else None
    _stop_point(should_stop)

    device = models.resolve_device(config.model.device)
    threads = choose_threads(config.training.threads)
    apply_threads(threads)
    precision = choose_precision(config.training.mixed_precision, device)
    accelerator = make_accelerator(config, device, precision)
    if plan is not None:
        check_resume(accelerator, plan.checkpoint.state)
    dtype = config.model.dtype
    if accelerator.num_processes > 1 and config.model.quantization == "none":
        # Every process would load onto the same first GPU; load on the CPU and let accelerate
        # place each copy on its own device, in the dtype the real device would get. (A quantized
        # base loads straight onto the process's own GPU, which accelerate made the current one.)
        dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(models.resolve_dtype(dtype, device), "fp32")
        device = "cpu"
    loaded = models.load_model(source, dtype=dtype, device=device, trust_remote_code=config.model.trust_remote_code,
                               allow_network=config.model.allow_network, quantization=config.model.quantization)
    check_weights_finite(loaded.model, config.model.path)
    _stop_point(should_stop)
    # The seed is set right before the LoRA weights are drawn, so a resumed run rebuilds the
    # same starting point (and the same method.prepare) as the run it continues.
    set_seed(config.training.seed)
    if config.training.gradient_checkpointing:
        enable_gradient_checkpointing(loaded.model, config.model.path)
    lora = config.lora
    model = models.attach_lora(loaded.model, r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                               roles=lora.roles, layers=lora.layers)
    if plan is not None:
        check_checkpoint_weights(plan, model)
    tokenize_roles(config, data, loaded.tokenizer)
    steps, epoch_role = total_steps(config, method, data, accelerator.num_processes)
    if plan is not None and plan.checkpoint.step > steps:
        raise UserError(f"The checkpoint {plan.checkpoint.path} is at step {plan.checkpoint.step}, past the "
                        f"{steps} steps the project now asks for",
                        "Give training.max_steps (or epochs) at least the checkpoint's step to resume.")
    notes = [precision.describe(loaded.facts.dtype, config.model.quantization), threads.describe()]
    return Prepared(config, method, data, accelerator, model, loaded.tokenizer, steps, epoch_role, inputs, plan, notes)
