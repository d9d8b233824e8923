"""The step loop of a training run: optimizer steps over the method's loss terms, with the data
streams, accelerate, the control checks, the numbers each step reports and its checkpoints.

A request to stop or cancel is looked at before every step, and, in a run of one process, also
between the method's loss groups and between micro-batches (and inside a method's long work,
through ``MethodContext.check_stop``): a step cut short is rolled back (no optimizer step, the
data streams and RNGs as they were before it), so the run ends as it was after its last whole
step and a checkpoint written then resumes exactly. With several processes the requests are
looked at between steps only, where every process can agree on them.
"""

from __future__ import annotations

import contextlib
import math
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list
from transformers import get_scheduler

from unlearn_studio.core.control import CANCEL, Cancelled, RunControl
from unlearn_studio.core.events import StepEvent
from unlearn_studio.core.methods.base import Batch, MethodContext, all_terms
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.checkpoint import restore_rng_state, rng_state, save_checkpoint
from unlearn_studio.core.run.data import RoleStream, make_streams
from unlearn_studio.core.run.failures import NonFiniteError
from unlearn_studio.core.run.preparation import Prepared
from unlearn_studio.core.run.record import RunRecord
from unlearn_studio.core.run.resume import WEIGHT_LIMIT
from unlearn_studio.core.run.sharded import adapter_state
from unlearn_studio.core.run.token_counter import TrainedTokenCounter

# Engines whose gradient reduction expects exactly one backward per micro-batch.
ONE_BACKWARD_PER_STEP = (DistributedType.DEEPSPEED, DistributedType.FSDP)


def broadcast(acc: Accelerator, value: Any) -> Any:
    """The main process's ``value`` on every process."""
    if acc.num_processes == 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated GPU memory on CUDA, else the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def make_optimizer(config: RunConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas))


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


class StepLoop:
    """The optimizer, schedule, streams and counters of one run, and the loop over its steps."""

    def __init__(self, prepared: Prepared, record: RunRecord, control: RunControl):
        p, acc, t = prepared, prepared.accelerator, prepared.config.training
        self.p, self.acc, self.record, self.control, self.t = p, acc, record, control, t
        self.trainable = [param for param in p.model.parameters() if param.requires_grad]
        optimizer = make_optimizer(p.config, self.trainable)
        self.scheduler = get_scheduler(p.config.schedule.name, optimizer, num_warmup_steps=p.config.schedule.warmup_steps,
                                       num_training_steps=p.total_steps)
        # The scheduler is not handed to accelerate: it would step it once per process.
        self.model, self.optimizer = acc.prepare(p.model, optimizer)
        # Within a step the processes could not agree on a request, so only a lone process looks.
        self.checks_within_steps = acc.num_processes == 1
        self.context = _RunContext(self.model, p.tokenizer, acc.device, p.model, data=p.data, log=record.log,
                                   report=self.method_report, max_length=t.max_length, batch_size=t.batch_size,
                                   should_stop=control.should_stop if self.checks_within_steps else None)
        batched = {role: item for role, item in p.data.items() if role not in p.method.roles.not_batched}
        self.streams: dict[str, RoleStream] = make_streams(batched, t.batch_size, t.seed, p.tokenizer,
                                                           acc.process_index, acc.num_processes)
        self.token_counter = TrainedTokenCounter(p.model)
        self.step = 0
        self.epochs_done = 0
        self.checkpoint_step = -1
        self.last_checkpoint = None
        self.health: dict[str, float] = {}
        self.step_seconds: list[float] = []
        self.undeclared: set[str] = set()
        self.method_values: dict[str, float] = {}  # the method's latest reported scalars

    # ---- the loop ---------------------------------------------------------------------------------

    @property
    def epoch_stream(self) -> RoleStream | None:
        return self.streams.get(self.p.epoch_role)

    def request(self) -> str:
        """The request that cut long work short (a cancel if the work stopped by itself)."""
        return self.control.request or CANCEL

    def train(self) -> str:
        """Train until the last step or a request; returns "finished", STOP or CANCEL."""
        p, t = self.p, self.t
        stream = self.epoch_stream
        if stream is not None and stream.epoch > self.epochs_done:
            # A checkpoint written while an epoch's end was cut short: it is done first.
            outcome = self.epoch_end(None)
            if outcome is not None:
                return outcome
        while self.step < p.total_steps:
            request = self.check_control()
            if request is not None:
                return request
            number = self.step + 1
            self.context.step = number
            started = time.perf_counter()
            try:
                losses, grad_norm, lr, tokens = self.one_step(number)
            except Cancelled:
                return self.request()
            seconds = time.perf_counter() - started
            self.step = number
            self.step_seconds.append(seconds)
            outcome = self.epoch_end(number) if stream is not None and stream.epoch > self.epochs_done else None
            if number % t.log_every == 0 or number == p.total_steps or outcome is not None:
                self.report(number, losses, grad_norm, lr, tokens / seconds if seconds > 0 else 0.0)
            if outcome is not None:
                return outcome
            if number % t.checkpoint_every == 0:
                self.save_checkpoint()
        return "finished"

    def epoch_end(self, number: int | None) -> str | None:
        """The method's look at the epoch that just ended: None to go on, "finished" when it ends the
        run, or the request that cut it short (the method's state is then as it was before)."""
        p = self.p
        before = p.method.state_dict()
        epoch = self.epoch_stream.epoch
        try:
            ends = bool(broadcast(self.acc, p.method.on_epoch_end(self.context, epoch)))
        except Cancelled:
            p.method.load_state_dict(before)
            return self.request()
        self.epochs_done = epoch
        if not ends:
            return None
        self.record.log("info", f"{p.method.title} ended the run after epoch {epoch} "
                                f"(step {number or self.step} of {p.total_steps})")
        return "finished"

    def check_control(self) -> str | None:
        """The pending request; while paused, block here (between steps) until something changes."""
        if self.acc.is_main_process:
            request = self.control.request
            if request is None and self.control.paused:
                self.record.status("paused", f"after step {self.step}", step=self.step, store_status="paused")
                request = self.control.wait_while_paused()
                if request is None:
                    self.record.status("resumed", f"at step {self.step + 1}", step=self.step, store_status="running")
        else:
            request = None
        return broadcast(self.acc, request)

    def check_within_step(self) -> None:
        if self.checks_within_steps and self.control.should_stop():
            raise Cancelled("the run was asked to end")

    # ---- one step ---------------------------------------------------------------------------------

    def one_step(self, number: int) -> tuple[dict[str, float], float, float, int]:
        """One optimizer step over grad_accum micro-batches; losses are averaged over them. The
        token count is what the adapter trained on (every forward with gradients), not just the
        drawn batches: SKU's mismatched answers and ICU's neighbours count, frozen passes do not.
        Cut short by a request (``Cancelled``), it leaves no trace: gradients dropped, streams and
        RNGs back where they were."""
        positions = {role: stream.state() for role, stream in self.streams.items()}
        rngs = rng_state() if self.checks_within_steps else None
        try:
            return self._step(number)
        except Cancelled:
            self.optimizer.zero_grad(set_to_none=True)
            for role, stream in self.streams.items():
                stream.load_state(positions[role])
            if rngs is not None:
                restore_rng_state(rngs)
            raise

    def _step(self, number: int) -> tuple[dict[str, float], float, float, int]:
        acc, t = self.acc, self.t
        sums: dict[str, float] = {}
        grad_norm = 0.0
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.token_counter.start()
        for micro in range(t.grad_accum):
            if micro:
                self.check_within_step()
            batch: dict[str, Batch] = {role: s.next_batch().to(acc.device) for role, s in self.streams.items()}
            with acc.accumulate(self.model):
                terms: list[tuple[str, torch.Tensor]] = []
                for index, group in enumerate(self.loss_groups(batch)):
                    if index:
                        self.check_within_step()
                    self.check_declared(group)
                    terms += [(name, value.detach().float().reshape(())) for name, value in group.items()]
                    total = sum(group.values())
                    if total.requires_grad:  # a method may skip a step (e.g. nothing left to forget)
                        acc.backward(total)
                    del group, total  # the next group's forward should not find this one's graph alive
                if not terms:
                    raise RuntimeError(f"{self.p.method.title} returned no loss terms")
                # One reduction per micro-batch, not per group (each one waits for the device), and
                # over processes first, so that every process sees the same verdict; checked before
                # the gradient norm, so that a non-finite loss is named rather than its gradients.
                values = acc.reduce(torch.stack([value for _, value in terms]), "mean").tolist()
                for (name, _), value in zip(terms, values, strict=True):
                    if not math.isfinite(value):
                        raise NonFiniteError(f"loss/{name}", value, number)
                    sums[name] = sums.get(name, 0.0) + value / t.grad_accum
                if acc.sync_gradients:
                    self.check_within_step()  # the last moment at which the step can still be undone
                    norm = acc.clip_grad_norm_(self.trainable, t.max_grad_norm)
                    # DeepSpeed clips in its own step and may not report a norm (None): none to check.
                    grad_norm = float(norm) if norm is not None else float("nan")
                    # fp16 loss scaling makes inf norms on purpose; the scaler then skips the step.
                    if norm is not None and not math.isfinite(grad_norm) and acc.mixed_precision != "fp16":
                        raise NonFiniteError("the gradient norm", grad_norm, number)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        peak = self.weights_peak()
        if not math.isfinite(peak) or peak > WEIGHT_LIMIT:
            raise NonFiniteError(f"the adapter's largest weight (training diverged; sane weights stay below "
                                 f"{WEIGHT_LIMIT:g})", peak, number)
        losses = {f"loss/{name}": value for name, value in sums.items()}
        losses["loss/total"] = sum(sums.values())
        self.health = {"loss": losses["loss/total"], "grad_norm": grad_norm, "weight_max": peak}
        return losses, grad_norm, lr, self.token_counter.total()

    def weights_peak(self) -> float:
        """The largest absolute adapter weight (NaN if any is NaN): one reduction, one wait."""
        peaks = [torch.linalg.vector_norm(param.detach(), ord=math.inf) for param in self.trainable if param.numel()]
        return float(torch.stack(peaks).max()) if peaks else 0.0

    def loss_groups(self, batch: dict[str, Batch]) -> Iterator[dict[str, torch.Tensor]]:
        """The method's terms, one group per backward pass. A method that yields groups gets each
        one backpropagated before its next forward (peak memory of one pass, not of all), except
        under DeepSpeed and FSDP, which expect one backward per micro-batch: there the groups are
        summed into one. A plain dict is one group."""
        terms = self.p.method.loss_terms(self.context, batch)
        if isinstance(terms, dict):
            yield terms
        elif self.acc.distributed_type in ONE_BACKWARD_PER_STEP:
            yield all_terms(terms)
        else:
            yield from terms

    def check_declared(self, terms: dict[str, torch.Tensor]) -> None:
        """Warn once per term a method returns without declaring it (the GUI plots declared ones)."""
        declared = self.p.method.terms
        new = [name for name in terms if declared and name not in declared and name not in self.undeclared]
        if new:
            self.undeclared.update(new)
            self.record.log("warning", f"{self.p.method.title} returned undeclared loss term(s) {', '.join(new)}")

    # ---- what a step reports ----------------------------------------------------------------------

    def report(self, number: int, losses: dict[str, float], grad_norm: float, lr: float, tokens_per_s: float) -> None:
        total = self.p.total_steps
        mean = sum(self.step_seconds) / len(self.step_seconds)
        memory = peak_memory_mb(self.acc.device)
        stream = self.epoch_stream
        epoch = stream.progress if stream is not None else 0.0
        self.record.emit(StepEvent(self.record.run_id, number, total, epoch, losses, lr, grad_norm, tokens_per_s,
                                   memory, mean * (total - number), dict(self.method_values)))
        self.record.add_metrics(number, {**losses, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tokens_per_s,
                                         "peak_memory_mb": memory, **self.method_values})

    def method_report(self, values: dict[str, float]) -> None:
        """Scalars a method reports (MethodContext.report); they go with every later step's metrics."""
        self.method_values.update({name: float(value) for name, value in values.items()})

    # ---- checkpoints ------------------------------------------------------------------------------

    def check_weights(self) -> None:
        """Never save weights that are not finite."""
        for name, param in self.p.model.named_parameters():
            if param.requires_grad and not torch.isfinite(param).all():
                raise NonFiniteError(f"the adapter weight {name}", float("nan"), self.step)

    def save_checkpoint(self) -> None:
        """A checkpoint of the step just done (its health was checked by the step itself). The
        metrics up to it are stored first, so that a run killed later and resumed from it keeps
        its whole history."""
        self.check_weights()
        gathered = adapter_state(self.acc, self.p.model)  # every process: a collective when sharded
        if self.acc.is_main_process:
            self.record.flush_metrics()
            p = self.p
            self.last_checkpoint = save_checkpoint(
                self.record.output_dir, step=self.step, run_id=self.record.run_id, model=p.model,
                optimizer=self.optimizer, scheduler=self.scheduler,
                streams={role: s.state() for role, s in self.streams.items()},
                keep=self.t.keep_checkpoints, method_state=p.method.state_dict(), epochs_done=self.epochs_done,
                config=p.config.to_dict(), inputs=p.inputs, health=self.health, adapter_state=gathered)
            self.record.log("info", f"Checkpoint {self.last_checkpoint.name} written")
        self.checkpoint_step = self.step
        self.acc.wait_for_everyone()
