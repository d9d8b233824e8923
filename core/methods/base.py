"""The method interface: a method declares its data roles, hyperparameters and stages, and computes
the named loss terms of one step. Everything else (data, LoRA, optimizer, accelerate, checkpoints,
events, the run's record) belongs to the runner, so a method is one short module.

Most methods train in one stage (``Train``). A method whose recipe has several stages declares
them as data (``stages``), and the runner executes them: SKU learns the harm, then negates the
adapter (``Train``, ``Finish``); Ext-Sub trains an expert and an anti-expert with another method,
then combines the two adapters (``TrainWith``, ``TrainWith``, ``Combine``).

The loss maths lives in pure functions (core/methods/losses.py) that tests call on tiny tensors.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from unlearn_studio.core.control import Cancelled
from unlearn_studio.core.errors import UserError


@dataclass(frozen=True)
class Hyperparameter:
    """One declared hyperparameter; the CLI and the GUI build their forms and checks from it."""

    name: str
    type: type  # int, float, str or bool
    default: Any
    help: str  # one line
    source: str  # where the default comes from, e.g. "NPO paper (arXiv 2404.05868), §4"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    advanced: bool = False  # hidden behind the "advanced" toggle in the app

    def check(self, value: Any, method: str) -> Any:
        """The value converted to the declared type; a UserError naming the parameter otherwise."""
        key = f"method.params.{self.name}"
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise UserError(f"'{key}' of {method} must be {self.type.__name__}, got {value!r}",
                            f"Set it to a {self.type.__name__} value, e.g. {self.default!r}: {self.help}")
        if self.type is float and not math.isfinite(value):
            # NaN passes every range comparison, so it is caught here.
            raise UserError(f"'{key}' of {method} must be a finite number, got {value!r}",
                            f"Set it to an ordinary number, e.g. {self.default!r}: {self.help}")
        if self.choices is not None and value not in self.choices:
            raise UserError(f"'{key}' of {method} must be one of {', '.join(map(repr, self.choices))}, got {value!r}",
                            f"Pick one of the allowed values: {self.help}")
        too_low = self.minimum is not None and value < self.minimum
        too_high = self.maximum is not None and value > self.maximum
        if too_low or too_high:
            bounds = " and ".join(text for text, bound in ((f"at least {self.minimum}", self.minimum),
                                                           (f"at most {self.maximum}", self.maximum))
                                  if bound is not None)
            raise UserError(f"'{key}' of {method} must be {bounds}, got {value!r}",
                            f"Choose a value {bounds}: {self.help}")
        return value


@dataclass(frozen=True)
class DataRoles:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Roles the method reads only through ``context.data`` (e.g. ICU's neighbour pool): the runner
    # draws no batches for them, so they cost no collation and do not count as tokens trained on.
    not_batched: tuple[str, ...] = ()
    # Roles that may have further sources ([data.<role>.also.<name>]): each is batched under the key
    # "role.name" and the method reads them all with ``role_batches``.
    several: tuple[str, ...] = ()


@dataclass
class Batch:
    """One batch of one data role, as the data layer collates it (right-padded)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # -100 on prompt and padding positions
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific tensors (e.g. cached targets)

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.extra.items()}
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), moved)

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


# What ``loss_terms`` returns: one dict of terms, or dicts yielded one forward pass at a time.
LossTerms = dict[str, torch.Tensor] | Iterator[dict[str, torch.Tensor]]


class MethodContext:
    """What a method may use during a step: the model with its adapter, the tokenizer, the
    original model (the SAME network with the adapter switched off, never a copy), every role's
    data (``data[role].loaded.rows`` and ``.examples``; a batch's ``extra["index"]`` says which
    rows it holds), the run's ``max_length`` and ``batch_size``, two ways to speak to the user
    (``log`` and ``report``) and one to listen: ``check_stop``, which long work (a generation
    loop) calls between its batches or tokens so that a cancel or stop takes effect at once."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, device: torch.device, *,
                 data: dict[str, Any] | None = None,
                 log: Callable[[str, str], None] | None = None,
                 report: Callable[[dict[str, float]], None] | None = None,
                 max_length: int | None = None, batch_size: int | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.data = data or {}
        # training.max_length and batch_size: what a method builds or generates itself (ELM's
        # consistency rows, ICU's refinement) is sized by them too, so that they bound its memory
        # as the user expects.
        self.max_length = max_length
        self.batch_size = batch_size
        self.step = 0
        self._log = log
        self._report = report
        self._should_stop = should_stop

    def log(self, level: str, message: str) -> None:
        """A line in the run's log ("info" | "warning" | "error")."""
        if self._log is not None:
            self._log(level, message)

    def report(self, values: dict[str, float]) -> None:
        """Method-specific scalars (e.g. {"icu/active_targets": 3}); stored with the current step's
        metrics and sent with the next step event, so the app can plot them."""
        if self._report is not None:
            self._report(values)

    def check_stop(self) -> None:
        """Raise ``Cancelled`` once the user asked the run to cancel or to stop; the runner then
        ends the run as asked, as it was before the step (or the epoch's end) that was cut short."""
        if self._should_stop is not None and self._should_stop():
            raise Cancelled("the run was asked to end")

    @contextlib.contextmanager
    def original_model(self) -> Iterator[torch.nn.Module]:
        """The base model p0: adapter disabled, no gradients."""
        with self.model.disable_adapter(), torch.no_grad():
            yield self.model


# ---- stages: a method's recipe, declared as data and executed by the runner ------------------------


@dataclass(frozen=True)
class Train:
    """Train the run's LoRA adapter with the method's own ``loss_terms``: the run's steps, curves
    and checkpoints."""

    name: str = "train"


@dataclass(frozen=True)
class Finish:
    """After ``Train``: change the trained adapter in place (``finalize_adapter``) before it is saved
    and evaluated; checkpoints keep the trained weights, so that the run can resume."""

    name: str


@dataclass(frozen=True)
class TrainWith:
    """Train an adapter with another method (``method``, e.g. "sft") as a run of its own, recorded
    in the same project and kept in the run's ``stages/`` folder: the project's data role ``data`` is
    that method's role ``as_role``; the project's roles that no stage trains on stay (the evaluation
    reads them). ``evaluate``: measure this stage's adapter after its training, beside the result."""

    name: str
    method: str
    data: str
    as_role: str
    evaluate: bool = False


@dataclass(frozen=True)
class Combine:
    """After the ``TrainWith`` stages named in ``inputs``: write the run's adapter from theirs
    (``combine``)."""

    name: str
    inputs: tuple[str, ...]


Stage = Train | Finish | TrainWith | Combine


def check_stages(title: str, stages: tuple[Stage, ...]) -> None:
    """The two shapes a recipe may take, or a TypeError (a mistake in the method's code, not the
    user's): ``Train`` then at most one ``Finish``; or ``TrainWith`` stages then one ``Combine`` of them."""
    kinds = [type(stage) for stage in stages]
    names = [stage.name for stage in stages]
    if len(set(names)) != len(names):
        raise TypeError(f"{title} declares two stages of the same name: {names}")
    if kinds in ([Train], [Train, Finish]):
        return
    trained = [stage.name for stage in stages if isinstance(stage, TrainWith)]
    if (len(kinds) >= 2 and kinds[-1] is Combine and kinds[:-1] == [TrainWith] * len(trained)
            and set(stages[-1].inputs) <= set(trained)):
        return
    raise TypeError(f"{title} declares the stages {[f'{k.__name__}({n})' for k, n in zip(kinds, names)]}; a recipe "
                    "is Train with at most one Finish after it, or TrainWith stages and a Combine of them")


class UnlearningMethod(ABC):
    """Subclasses set the class attributes and implement ``loss_terms`` (and the hooks their
    declared ``stages`` name: ``finalize_adapter`` for ``Finish``, ``combine`` for ``Combine``)."""

    name: ClassVar[str]  # registry key, used in project files ("grad_diff")
    title: ClassVar[str]  # shown in the app ("GradDiff")
    summary: ClassVar[str]  # one line
    paper: ClassVar[str]  # citation with arXiv id
    roles: ClassVar[DataRoles]
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = ()
    terms: ClassVar[tuple[str, ...]] = ()  # every loss-term name loss_terms may return (for plots)
    # The recipe the runner executes; most methods train in one stage.
    stages: ClassVar[tuple[Stage, ...]] = (Train(),)
    # (metric, label) pairs logged for a stage that is evaluated on its own (TrainWith(evaluate=True)),
    # and in the table that sets it beside the base model and the run's result.
    stage_metrics: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, params: dict[str, Any] | None = None):
        self.params = self.check_params(params or {})

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Declared defaults filled in and every value checked; an unknown name is an error."""
        declared = {h.name: h for h in cls.hyperparameters}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(declared), n=1)
            guess = f"Did you mean 'method.params.{close[0]}'? " if close else ""
            keys = ", ".join(f"'method.params.{u}'" for u in unknown)
            raise UserError(f"{cls.title} has no hyperparameter {keys}",
                            f"{guess}Its hyperparameters are: {', '.join(declared) or 'none'}.")
        return {name: h.check(params.get(name, h.default), cls.title) for name, h in declared.items()}

    @classmethod
    def check_roles(cls, available: set[str]) -> None:
        """Fail before any model is loaded when a required data role is missing."""
        missing = [role for role in cls.roles.required if role not in available]
        if missing:
            raise UserError(f"{cls.title} needs the data role(s) {', '.join(missing)}, which the project does not set",
                            f"Add [data.{missing[0]}] with a path to the project file.")

    def prepare(self, context: MethodContext, batches: dict[str, list[Batch]]) -> None:
        """Once before training (e.g. RMU's steering direction); ``batches`` are a few of each role.
        It runs on resume too, before ``load_state_dict``."""

    def on_epoch_end(self, context: MethodContext, epoch: int) -> bool:
        """After each pass over the first required role (``epoch`` passes done); True ends the
        run early as finished (e.g. ICU once nothing is left to forget)."""
        return False

    def finalize_adapter(self, model: torch.nn.Module) -> None:
        """The ``Finish`` stage: once, just before the final adapter is saved and evaluated (not for
        checkpoints, which keep the trained weights for resuming); e.g. SKU negates what it learned."""
        raise NotImplementedError(f"{self.title} declares a Finish stage but no finalize_adapter")

    def combine(self, adapters: dict[str, Path], out: Path) -> Path:
        """The ``Combine`` stage: write the run's adapter into the new folder ``out`` from the
        adapters of the stages it names (stage name -> adapter folder); returns ``out``."""
        raise NotImplementedError(f"{self.title} declares a Combine stage but no combine")

    def state_dict(self) -> dict[str, Any]:
        """Method state a resumed run needs (JSON-serialisable; saved in every checkpoint)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take up the state ``state_dict`` returned."""

    @abstractmethod
    def loss_terms(self, context: MethodContext, batch: dict[str, Batch]) -> LossTerms:
        """The named, already weighted loss terms of one step (e.g. {"forget": …, "retain": …});
        the runner minimises their sum and streams each one as "loss/<name>". Terms that carry no
        gradient (e.g. zeros when a batch has nothing to forget) make the step a no-op.

        A method whose terms come from separate forward passes may instead YIELD them in groups
        (one dict per forward pass): the runner backpropagates each group before asking for the
        next, so only one pass's activations are held at a time. The gradient is the same (it is
        linear in the terms). A name may appear in several groups; its values add up. Let go of
        a group's logits before yielding the next one (compute them in a helper), or they stay
        alive in the generator."""


def all_terms(terms: LossTerms) -> dict[str, torch.Tensor]:
    """What ``loss_terms`` returned as one dict: yielded groups are added up name by name."""
    if isinstance(terms, dict):
        return terms
    merged: dict[str, torch.Tensor] = {}
    for group in terms:
        for name, value in group.items():
            merged[name] = merged[name] + value if name in merged else value
    return merged


def role_batches(context: MethodContext, batch: dict[str, Batch], role: str) -> list[tuple[Batch, float]]:
    """The step's batches of ``role`` and of its further sources ("role.name"), each with the weight
    the project gives it (1 when it gives none)."""
    keys = [key for key in batch if key == role or key.startswith(f"{role}.")]
    return [(batch[key], getattr(context.data.get(key), "weight", 1.0)) for key in keys]


def forward_logits(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The model's logits [B, T, V] for a batch; no KV cache, since training never reuses it."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
