"""The run loop: one ``RunConfig`` in, a trained LoRA adapter (and a record of the run) out.

``execute`` first checks and loads everything the run needs (method, parameters, data roles,
data, model, LoRA, tokenization) and raises ``UserError`` for bad input before anything is
written. Then the run starts: a row in the store, an output folder with a config snapshot, and
training with accelerate, streaming events to a listener, checking the ``RunControl`` once per
step, writing checkpoints, and ending as finished, stopped, cancelled or failed.

The loop works the same in the app (a worker thread), on the command line, and under
``accelerate launch``; events, store rows and files come from the main process only.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DistributedType, broadcast_object_list, set_seed
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import get_scheduler

from unlearn_studio.core.control import CANCEL, STOP, RunControl
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import (
    EvaluationEvent,
    Event,
    EventBatcher,
    FailedEvent,
    FinishedEvent,
    Listener,
    LogEvent,
    StatusEvent,
    StepEvent,
)
from unlearn_studio.core.files import mark_as_own, write_dir_atomically
from unlearn_studio.core.methods.base import Batch, MethodContext, UnlearningMethod, all_terms
from unlearn_studio.core.model import loading as models
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.checkpoint import (
    ADAPTER,
    Checkpoint,
    find_checkpoint,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
)
from unlearn_studio.core.run.data import (
    RoleData,
    first_batches,
    load_roles,
    make_streams,
    steps_per_epoch,
    tokenize_roles,
)
from unlearn_studio.core.run.token_counter import TrainedTokenCounter

# Engines whose gradient reduction expects exactly one backward per micro-batch.
ONE_BACKWARD_PER_STEP = (DistributedType.DEEPSPEED, DistributedType.FSDP)

# evaluate_fn(model, tokenizer, phase, out_dir) -> aggregates, or a result with .aggregates and .items_path
EvaluateFn = Callable[[Any, Any, str, Path], Any]

METRICS_FLUSH_STEPS = 20  # store writes are batched; a crash loses at most this many steps
PREPARE_BATCHES = 4  # batches per role handed to method.prepare
OOM_FIX = ("Use a smaller training.batch_size (raise training.grad_accum to keep the effective batch), "
           "a shorter training.max_length, model.dtype = \"bf16\" (or training.mixed_precision = \"bf16\"), "
           "or fewer LoRA targets (lora.roles, lora.layers).")


@dataclass
class RunResult:
    """How a run ended. ``adapter_dir`` is set for "finished" and "stopped"."""

    run_id: str
    status: str  # "finished" | "stopped" | "cancelled" | "failed"
    adapter_dir: Path | None
    steps: int
    output_dir: Path | None
    error: str | None = None
    evaluations: dict[str, Any] = field(default_factory=dict)  # phase -> the evaluation's result


class NonFiniteError(Exception):
    """A loss term, the gradient norm or the weights stopped being finite numbers."""

    def __init__(self, what: str, value: float, step: int):
        self.what, self.value, self.step = what, value, step
        super().__init__(f"{what} is {value} at step {step}")


def method_class(name: str) -> type[UnlearningMethod]:
    """The method registered as ``name`` (imported here: the registry pulls in every method)."""
    from unlearn_studio.core.methods.registry import get_method

    return get_method(name)


# ---- preparation: every check and load before anything is written --------------------------------


class _RunContext(MethodContext):
    """MethodContext whose original model is the unwrapped PEFT model, so that it still works
    when accelerate wraps the trainable model (DDP) and the wrapper has no ``disable_adapter``."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, device: torch.device, peft_model, **kwargs):
        super().__init__(model, tokenizer, device, **kwargs)
        self._peft = peft_model

    @contextlib.contextmanager
    def original_model(self):
        with self._peft.disable_adapter(), torch.no_grad():
            yield self._peft


@dataclass
class _Prepared:
    method_cls: type[UnlearningMethod]
    method: UnlearningMethod
    data: dict[str, RoleData]
    accelerator: Accelerator
    model: Any  # PeftModel
    tokenizer: Any
    total_steps: int
    epoch_role: str
    checkpoint: Checkpoint | None


def _make_accelerator(config: RunConfig, device: str) -> Accelerator:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        # accelerate keeps process-wide state, and the app runs many runs in one process, each
        # with its own device and precision; a single process can safely start it afresh.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    precision = config.training.mixed_precision
    try:
        return Accelerator(mixed_precision=precision, gradient_accumulation_steps=config.training.grad_accum,
                           cpu=device == "cpu")
    except ValueError as exc:
        raise UserError(f"training.mixed_precision = \"{precision}\" cannot be used on {device}: {exc}",
                        "Set training.mixed_precision = \"no\" (or \"bf16\"), or choose another "
                        "model.device.") from exc


def _total_steps(config: RunConfig, cls: type[UnlearningMethod], data: dict[str, RoleData],
                 world: int) -> tuple[int, str]:
    """Optimizer steps of the run, and the role whose passes count as epochs."""
    t = config.training
    reference = cls.roles.required[0] if cls.roles.required else next(iter(data), "")
    if t.max_steps is not None:
        return t.max_steps, reference
    if not reference:
        raise UserError(f"{cls.title} uses no data set, so training.epochs has no meaning",
                        "Set training.max_steps instead of training.epochs.")
    micro_steps = t.epochs * steps_per_epoch(data[reference].n, t.batch_size, world)
    return max(1, math.ceil(micro_steps / t.grad_accum)), reference


def _prepare(config: RunConfig, store, resume: str | os.PathLike | None) -> _Prepared:
    config.validate()
    cls = method_class(config.method.name)
    method = cls(config.method.params)
    cls.check_roles(set(config.data))
    if not config.lora.enabled:
        raise UserError(f"{cls.title} trains a LoRA adapter, but lora.enabled is false",
                        "Set lora.enabled = true in the project file.")
    checkpoint = find_checkpoint(resume) if resume is not None else None
    if checkpoint is not None and store is not None:
        try:
            store.run(checkpoint.run_id)
        except UserError:
            raise UserError(f"The checkpoint {checkpoint.path} belongs to run {checkpoint.run_id}, "
                            f"which is not in the project store {store.path}",
                            "Resume with the store the run was started with (--store), or without one.") from None

    roles = [*cls.roles.required, *(r for r in cls.roles.optional if r in config.data)]
    data = load_roles(config, roles)

    device = models.resolve_device(config.model.device)
    accelerator = _make_accelerator(config, device)
    dtype = config.model.dtype
    if accelerator.num_processes > 1:
        # Every process would load onto the same first GPU; load on the CPU and let accelerate
        # place each copy on its own device, in the dtype the real device would get.
        dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(models.resolve_dtype(dtype, device), "fp32")
        device = "cpu"
    loaded = models.load_model(config.resolve_model_path(), dtype=dtype, device=device,
                               trust_remote_code=config.model.trust_remote_code,
                               allow_network=config.model.allow_network)
    # The seed is set right before the LoRA weights are drawn, so a resumed run rebuilds the
    # same starting point (and the same method.prepare) as the run it continues.
    set_seed(config.training.seed)
    lora = config.lora
    model = models.attach_lora(loaded.model, r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                               roles=lora.roles, layers=lora.layers)
    tokenize_roles(config, data, loaded.tokenizer)
    total, reference = _total_steps(config, cls, data, accelerator.num_processes)
    return _Prepared(cls, method, data, accelerator, model, loaded.tokenizer, total, reference, checkpoint)


# ---- the run --------------------------------------------------------------------------------------


def execute(
    config: RunConfig,
    *,
    store=None,
    project_id: int | None = None,
    listener: Listener | None = None,
    control: RunControl | None = None,
    resume: str | os.PathLike | None = None,
    evaluate_fn: EvaluateFn | None = None,
) -> RunResult:
    """Run ``config`` to the end and say how it ended.

    Bad input (config, method parameters, data roles, data, model) raises ``UserError`` before
    anything is written. Once the run has started, every problem ends it with a status and a
    ``FailedEvent`` instead of an exception (KeyboardInterrupt and SystemExit still propagate,
    with the run marked "interrupted"). ``resume`` is a checkpoint folder, or a run's output
    folder (its newest checkpoint): the same run continues. ``evaluate_fn(model, tokenizer,
    phase, out_dir)`` runs before training (adapter off) and after it.
    """
    stages = getattr(method_class(config.method.name), "run_stages", None)
    if stages is not None:  # a recipe of several runs (Ext-Sub: two trainings, then adapter arithmetic)
        return stages(config, store=store, project_id=project_id, listener=listener, control=control,
                      resume=resume, evaluate_fn=evaluate_fn)
    prepared = _prepare(config, store, resume)
    return _Run(config, prepared, store, listener, control or RunControl(), evaluate_fn).run(project_id)


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated GPU memory on CUDA, else the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


class _Run:
    """One started run; ``run`` drives it from start to end."""

    def __init__(self, config: RunConfig, prepared: _Prepared, store, listener: Listener | None,
                 control: RunControl, evaluate_fn: EvaluateFn | None):
        self.config = config
        self.p = prepared
        self.acc = prepared.accelerator
        self.store = store if self.acc.is_main_process else None
        self.control = control
        self.evaluate_fn = evaluate_fn
        self.batcher = None
        if listener is not None and self.acc.is_main_process:
            def deliver(events: list[Event]) -> None:
                for event in events:
                    listener(event)

            self.batcher = EventBatcher(deliver)
        self.run_id = ""
        self.output_dir: Path | None = None
        self.step = 0
        self.last_checkpoint: Path | None = prepared.checkpoint.path if prepared.checkpoint else None
        self.checkpoint_step = prepared.checkpoint.step if prepared.checkpoint else -1
        self.pending_metrics: list[tuple[int, dict[str, float]]] = []
        self.step_seconds: list[float] = []
        self.undeclared: set[str] = set()
        self.method_values: dict[str, float] = {}  # the method's latest reported scalars
        self.token_counter: TrainedTokenCounter | None = None

    # ---- events and store ----------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if self.batcher is not None:
            self.batcher(event)

    def status(self, status: str, message: str = "", store_status: str | None = None) -> None:
        self.emit(StatusEvent(self.run_id, status, message))
        if store_status and self.store is not None:
            self.store.set_status(self.run_id, store_status)

    def log(self, level: str, message: str) -> None:
        self.emit(LogEvent(self.run_id, level, message))

    def flush_metrics(self) -> None:
        if self.store is not None and self.pending_metrics:
            self.store.log_metrics_batch(self.run_id, self.pending_metrics)
        self.pending_metrics = []

    # ---- start and end -------------------------------------------------------------------------

    def run(self, project_id: int | None) -> RunResult:
        self.start(project_id)
        try:
            self.create_folder()
            outcome = self.train()
            return self.end(outcome)
        except BaseException as exc:  # noqa: BLE001 - every way a run can end is recorded
            return self.fail(exc)
        finally:
            if self.token_counter is not None:
                self.token_counter.remove()
            if self.batcher is not None:
                self.batcher.flush()

    def start(self, project_id: int | None) -> None:
        """Record the run in the store (or take up the resumed one); sets run_id and output_dir."""
        checkpoint = self.p.checkpoint
        if checkpoint is not None:
            self.run_id, self.output_dir = checkpoint.run_id, checkpoint.run_dir
            if self.store is not None:
                # Steps after the checkpoint are trained again; their old metrics would plot twice.
                self.store.delete_metrics_after(self.run_id, checkpoint.step)
                self.store.set_status(self.run_id, "running")
        else:
            root = self.config.resolve_path(self.config.output.dir)
            run_id = ""
            if self.store is not None:
                if project_id is None:
                    project_id = self.store.ensure_project(self.config.name, _project_file(self.config))
                run_id = self.store.start_run(project_id, self.config, root)
            elif self.acc.is_main_process:
                run_id = uuid.uuid4().hex
            self.run_id = _broadcast(self.acc, run_id)
            self.output_dir = root / self.run_id
            if self.store is not None:
                self.store.set_output_dir(self.run_id, self.output_dir)

    def create_folder(self) -> None:
        """The output folder with a snapshot of the config; then the first status event."""
        checkpoint = self.p.checkpoint
        if self.acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            mark_as_own(self.output_dir, "run", run_id=self.run_id)
            base = self.config.base_dir or Path.cwd()
            header = f"# The configuration of run {self.run_id}; relative paths are relative to {base}\n"
            (self.output_dir / "config.toml").write_text(header + self.config.to_toml(), encoding="utf-8")
        if checkpoint is not None:
            self.status("resumed", f"from {checkpoint.path.name} (step {checkpoint.step})")
        else:
            self.status("running", f"{self.p.total_steps} steps")

    def end(self, outcome: str) -> RunResult:
        peft = self.p.model
        if outcome == CANCEL:
            self.flush_metrics()
            where = f"; checkpoints are kept in {self.last_checkpoint.parent}" if self.last_checkpoint else ""
            message = f"Cancelled at step {self.step}{where}"
            if self.store is not None:
                self.store.set_status(self.run_id, "cancelled", error=message)
            self.emit(FailedEvent(self.run_id, "cancelled", message,
                                  "Resume from the last checkpoint (--resume), or start the run again."))
            return RunResult(self.run_id, "cancelled", None, self.step, self.output_dir, message)

        if outcome == STOP:
            self.status("stopping", f"saving the adapter at step {self.step}")
            if self.step > 0 and self.checkpoint_step != self.step:
                self.save_checkpoint()
        adapter = self.output_dir / ADAPTER
        self.p.method.finalize_adapter(peft)
        self.check_weights()
        if self.acc.is_main_process:
            # Written again when a stopped run is resumed and ends: the run's own adapter.
            write_dir_atomically(adapter, peft.save_pretrained, kind="adapter", overwrite=True)
        self.acc.wait_for_everyone()
        self.log("info", f"Adapter saved to {adapter}")
        if self.store is not None:
            self.store.add_artifact(self.run_id, "adapter", adapter)
        status = "stopped" if outcome == STOP else "finished"
        if status == "finished":
            self.evaluate("after")
        self.flush_metrics()
        if self.store is not None:
            self.store.set_status(self.run_id, status)
        self.emit(FinishedEvent(self.run_id, status, str(adapter), self.step))
        return RunResult(self.run_id, status, adapter, self.step, self.output_dir)

    def fail(self, exc: BaseException) -> RunResult:
        """Record how the run broke; KeyboardInterrupt and SystemExit go on up."""
        self.flush_metrics()
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            if self.store is not None:
                self.store.set_status(self.run_id, "interrupted", error=f"Interrupted at step {self.step}")
            raise exc
        trace = ""
        if isinstance(exc, NonFiniteError):
            kept = (f"The last good checkpoint is {self.last_checkpoint}; resume from it (--resume) after the change."
                    if self.last_checkpoint else "No checkpoint had been written yet.")
            message = str(exc)
            fix = ("Lower the learning rate (optimizer.lr, e.g. to a tenth) and check the data for empty or "
                   f"unusual rows; bf16 is steadier than fp16. {kept}")
        elif _is_oom(exc):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            message = f"Out of memory at step {self.step + 1} on {self.acc.device}"
            fix = OOM_FIX
        else:
            message, fix, trace = explain_failure(exc, f" at step {self.step + 1}")
        if self.store is not None:
            self.store.set_status(self.run_id, "failed", error=failure_record(message, fix, trace))
        self.emit(FailedEvent(self.run_id, "failed", message, fix, trace))
        return RunResult(self.run_id, "failed", None, self.step, self.output_dir, message)

    # ---- training ------------------------------------------------------------------------------

    def train(self) -> str:
        """Train until the last step or a request; returns "finished", STOP or CANCEL."""
        p, acc, t = self.p, self.acc, self.config.training
        for role, item in p.data.items():
            if item.truncated:
                self.log("warning", f"{role}: {len(item.truncated)} example(s) cut to max_length "
                                    f"{t.max_length}, e.g. {item.truncated[0]}")
        trainable = [param for param in p.model.parameters() if param.requires_grad]
        optimizer = _make_optimizer(self.config, trainable)
        scheduler = get_scheduler(self.config.schedule.name, optimizer,
                                  num_warmup_steps=self.config.schedule.warmup_steps,
                                  num_training_steps=p.total_steps)
        # The scheduler is not handed to accelerate: it would step it once per process.
        model, optimizer = acc.prepare(p.model, optimizer)
        self.model, self.optimizer, self.scheduler, self.trainable = model, optimizer, scheduler, trainable
        context = _RunContext(model, p.tokenizer, acc.device, p.model, data=p.data, log=self.log,
                              report=self.method_report, max_length=t.max_length,
                              batch_size=t.batch_size)
        batched = {role: item for role, item in p.data.items() if role not in p.method_cls.roles.not_batched}
        streams = make_streams(batched, t.batch_size, t.seed, p.tokenizer, acc.process_index, acc.num_processes)
        self.streams = streams
        self.token_counter = TrainedTokenCounter(p.model)

        model.train()
        prepare = first_batches(p.data, t.batch_size, p.tokenizer, PREPARE_BATCHES)
        p.method.prepare(context, {role: [b.to(acc.device) for b in batches] for role, batches in prepare.items()})
        if p.checkpoint is None:
            self.evaluate("before")
        else:
            self.restore(p.checkpoint)
        epoch_stream = streams.get(p.epoch_role)
        epochs_done = epoch_stream.epoch if epoch_stream is not None else 0
        self.log("info", f"{p.method_cls.title}: steps {self.step + 1}-{p.total_steps}, "
                         f"{sum(x.numel() for x in trainable):,} trainable parameters, data "
                         + ", ".join(f"{r} {d.n} rows ({d.template})" for r, d in p.data.items()))

        while self.step < p.total_steps:
            request = self.check_control()
            if request is not None:
                return request
            number = self.step + 1
            context.step = number
            started = time.perf_counter()
            losses, grad_norm, lr, tokens = self.one_step(context, number)
            seconds = time.perf_counter() - started
            self.step = number
            self.step_seconds.append(seconds)
            ends_early = False
            if epoch_stream is not None and epoch_stream.epoch > epochs_done:
                epochs_done = epoch_stream.epoch
                ends_early = bool(_broadcast(acc, p.method.on_epoch_end(context, epochs_done)))
            if number % t.log_every == 0 or number == p.total_steps or ends_early:
                self.report(number, losses, grad_norm, lr, tokens / seconds if seconds > 0 else 0.0)
            if ends_early:
                self.log("info", f"{p.method_cls.title} ended the run after epoch {epochs_done} "
                                 f"(step {number} of {p.total_steps})")
                return "finished"
            if number % t.checkpoint_every == 0:
                self.save_checkpoint()
        return "finished"

    def one_step(self, context: MethodContext, number: int) -> tuple[dict[str, float], float, float, int]:
        """One optimizer step over grad_accum micro-batches; losses are averaged over them. The
        token count is what the adapter trained on (every forward with gradients), not just the
        drawn batches: SKU's mismatched answers and ICU's neighbours count, frozen passes do not."""
        acc, t = self.acc, self.config.training
        sums: dict[str, float] = {}
        grad_norm = 0.0
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.token_counter.start()
        for _ in range(t.grad_accum):
            batch: dict[str, Batch] = {role: s.next_batch().to(acc.device) for role, s in self.streams.items()}
            with acc.accumulate(self.model):
                terms: list[tuple[str, torch.Tensor]] = []
                for group in self.loss_groups(context, batch):
                    self.check_declared(group)
                    terms += [(name, value.detach().float().reshape(())) for name, value in group.items()]
                    total = sum(group.values())
                    if total.requires_grad:  # a method may skip a step (e.g. nothing left to forget)
                        acc.backward(total)
                    del group, total  # the next group's forward should not find this one's graph alive
                if not terms:
                    raise RuntimeError(f"{self.p.method_cls.title} returned no loss terms")
                # One reduction per micro-batch, not per group (each one waits for the device), and
                # over processes first, so that every process sees the same verdict; checked before
                # the gradient norm, so that a non-finite loss is named rather than its gradients.
                values = acc.reduce(torch.stack([value for _, value in terms]), "mean").tolist()
                for (name, _), value in zip(terms, values, strict=True):
                    if not math.isfinite(value):
                        raise NonFiniteError(f"loss/{name}", value, number)
                    sums[name] = sums.get(name, 0.0) + value / t.grad_accum
                if acc.sync_gradients:
                    grad_norm = float(acc.clip_grad_norm_(self.trainable, t.max_grad_norm))
                    # fp16 loss scaling makes inf norms on purpose; the scaler then skips the step.
                    if not math.isfinite(grad_norm) and t.mixed_precision != "fp16":
                        raise NonFiniteError("the gradient norm", grad_norm, number)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        losses = {f"loss/{name}": value for name, value in sums.items()}
        losses["loss/total"] = sum(sums.values())
        return losses, grad_norm, lr, self.token_counter.total()

    def loss_groups(self, context: MethodContext, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        """The method's terms, one group per backward pass. A method that yields groups gets each
        one backpropagated before its next forward (peak memory of one pass, not of all), except
        under DeepSpeed and FSDP, which expect one backward per micro-batch: there the groups are
        summed into one. A plain dict is one group."""
        terms = self.p.method.loss_terms(context, batch)
        if isinstance(terms, dict):
            yield terms
        elif self.acc.distributed_type in ONE_BACKWARD_PER_STEP:
            yield all_terms(terms)
        else:
            yield from terms

    def check_declared(self, terms: dict[str, torch.Tensor]) -> None:
        """Warn once per term a method returns without declaring it (the GUI plots declared ones)."""
        declared = self.p.method_cls.terms
        new = [name for name in terms if declared and name not in declared and name not in self.undeclared]
        if new:
            self.undeclared.update(new)
            self.log("warning", f"{self.p.method_cls.title} returned undeclared loss term(s) {', '.join(new)}")

    def report(self, number: int, losses: dict[str, float], grad_norm: float, lr: float, tokens_per_s: float) -> None:
        total = self.p.total_steps
        mean = sum(self.step_seconds) / len(self.step_seconds)
        memory = peak_memory_mb(self.acc.device)
        epoch = self.streams[self.p.epoch_role].progress if self.p.epoch_role in self.streams else 0.0
        self.emit(StepEvent(self.run_id, number, total, epoch, losses, lr, grad_norm, tokens_per_s, memory,
                            mean * (total - number), dict(self.method_values)))
        if self.store is not None:
            values = {**losses, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tokens_per_s,
                      "peak_memory_mb": memory, **self.method_values}
            self.pending_metrics.append((number, values))
            if len(self.pending_metrics) >= METRICS_FLUSH_STEPS:
                self.flush_metrics()

    def method_report(self, values: dict[str, float]) -> None:
        """Scalars a method reports (MethodContext.report); they go with every later step's metrics."""
        self.method_values.update({name: float(value) for name, value in values.items()})

    def check_control(self) -> str | None:
        """The pending request; while paused, block here (between steps) until something changes."""
        if self.acc.is_main_process:
            request = self.control.request
            if request is None and self.control.paused:
                self.status("paused", f"after step {self.step}", store_status="paused")
                request = self.control.wait_while_paused()
                if request is None:
                    self.status("resumed", f"at step {self.step + 1}", store_status="running")
        else:
            request = None
        return _broadcast(self.acc, request)

    # ---- checkpoints, evaluation ---------------------------------------------------------------

    def check_weights(self) -> None:
        """Never save weights that are not finite."""
        for name, param in self.p.model.named_parameters():
            if param.requires_grad and not torch.isfinite(param).all():
                raise NonFiniteError(f"the adapter weight {name}", float("nan"), self.step)

    def save_checkpoint(self) -> None:
        self.check_weights()
        if self.acc.is_main_process:
            self.last_checkpoint = save_checkpoint(
                self.output_dir, step=self.step, run_id=self.run_id, model=self.p.model,
                optimizer=self.optimizer, scheduler=self.scheduler,
                streams={role: s.state() for role, s in self.streams.items()},
                keep=self.config.training.keep_checkpoints, method_state=self.p.method.state_dict())
            self.log("info", f"Checkpoint {self.last_checkpoint.name} written")
        self.checkpoint_step = self.step
        self.acc.wait_for_everyone()

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue exactly where the checkpoint left off: weights, optimizer, scheduler, data, RNGs."""
        fix = "Resume with the project file the run was started with (same lora, optimizer and data settings)."
        weights = load_file(checkpoint.adapter_dir / "adapter_model.safetensors")
        try:
            result = set_peft_model_state_dict(self.p.model, weights)
        except RuntimeError as exc:
            raise UserError(f"The checkpoint {checkpoint.path} does not fit this project's LoRA adapter: {exc}",
                            fix) from exc
        missing = [key for key in result.missing_keys if "lora_" in key]
        if result.unexpected_keys or missing:
            example = (result.unexpected_keys or missing)[0]
            raise UserError(f"The checkpoint {checkpoint.path} and this project's LoRA adapter have different "
                            f"modules (e.g. {example})", fix)
        state = load_training_state(checkpoint)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:
            raise UserError(f"The optimizer state in {checkpoint.path} does not fit this project: {exc}",
                            fix) from exc
        self.scheduler.load_state_dict(state["scheduler"])
        for role, stream in self.streams.items():
            if role not in checkpoint.state["streams"]:
                raise UserError(f"The checkpoint {checkpoint.path} has no position for the data role {role}", fix)
            stream.load_state(checkpoint.state["streams"][role])
        self.p.method.load_state_dict(checkpoint.state.get("method", {}))
        restore_rng_state(state["rng"])
        self.step = checkpoint.step
        self.checkpoint_step = checkpoint.step

    def evaluate(self, phase: str) -> None:
        """Run ``evaluate_fn`` (adapter off before training) and record its numbers."""
        ev = self.config.evaluation
        if self.evaluate_fn is None or ev.suite == "none" or not getattr(ev, phase):
            return
        if self.acc.is_main_process:
            self.status("evaluating", phase)
            peft = self.p.model
            peft.eval()
            try:
                with peft.disable_adapter() if phase == "before" else contextlib.nullcontext():
                    result = self.evaluate_fn(peft, self.p.tokenizer, phase, self.output_dir / "evaluation" / phase)
            finally:
                peft.train()
            aggregates = getattr(result, "aggregates", result)
            items_path = getattr(result, "items_path", None)
            if aggregates:
                aggregates = {key: float(value) for key, value in aggregates.items()}
                self.emit(EvaluationEvent(self.run_id, phase, ev.suite, aggregates))
                if self.store is not None:
                    self.store.add_evaluation(self.run_id, phase, ev.suite, aggregates,
                                              str(items_path) if items_path else None)
            if phase == "before":
                self.status("running", "training")
        self.acc.wait_for_everyone()


# ---- helpers --------------------------------------------------------------------------------------


def explain_failure(exc: BaseException, where: str = "") -> tuple[str, str, str]:
    """(what went wrong, what to do, traceback) for an exception that ended a run: a UserError
    speaks for itself; anything else is a bug, with its traceback. ``where``: e.g. " at step 5"."""
    if isinstance(exc, UserError):
        return exc.problem, exc.fix, ""
    return (f"{type(exc).__name__}{where}: {exc}", "This looks like a bug; the traceback below says where it happened.",
            "".join(traceback.format_exception(exc)))


def failure_record(message: str, fix: str, trace: str) -> str:
    """The error text a failed run keeps in the store."""
    return f"{message}\nWhat to do: {fix}" + (f"\n{trace}" if trace else "")


def _make_optimizer(config: RunConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas))


def _broadcast(acc: Accelerator, value: Any) -> Any:
    """The main process's ``value`` on every process."""
    if acc.num_processes == 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _project_file(config: RunConfig) -> Path:
    """Where the project's TOML file is taken to be when the caller names no project."""
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in config.name.strip()).strip("-") or "project"
    return (config.base_dir or Path.cwd()) / f"{slug}.toml"
