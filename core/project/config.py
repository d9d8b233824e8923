"""The one typed run configuration (``RunConfig``) and its TOML form.

A project file is TOML whose tables mirror the dataclasses below. Validation is generic
(config_validation.py walks the type hints of the dataclasses), so adding a field needs no extra
checking code. Range limits are declared in field metadata (``_min``/``_above``/``_range``); the
few rules that tie fields together live in ``RunConfig._check_rules``.

Canonical text: keys in dataclass field order (TOML puts sub-tables after plain keys), ``None``
omitted (TOML has no null; a missing key loads as its default), empty tables omitted, floats
written with ``repr`` so they read back bit-for-bit.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from unlearn_studio.core.data.roles import ROLES as _ROLE_TABLE
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.paths import demo_data_dir, demo_model_dir, split_path
from unlearn_studio.core.project.config_file import parse_toml, read_project_text, write_project_text
from unlearn_studio.core.project.config_rules import check_rules
from unlearn_studio.core.project.config_validation import build, serialised_fields
from unlearn_studio.core.project.tracking_config import TrackingConfig

# The data roles come from core/data/roles.py; as a Literal the generic validator checks the
# keys of [data.<role>] tables and suggests close names.
ROLES: tuple[str, ...] = tuple(_ROLE_TABLE)
Role = Literal[ROLES]  # type: ignore[valid-type]

DEMO_PREFIX = "demo:"  # "demo:NAME" is a file in demo_data_dir()
DEMO_MODEL = "demo"  # model.path meaning the built-in demo model


def _looks_like_hub_id(text: str) -> bool:
    """"gpt2" or "org/name": no more than one slash, and nothing that only a path would start with."""
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", text)) and not text.startswith((".", "~"))


def _min(n: float) -> dict:
    return {"min": n}


def _above(n: float) -> dict:
    return {"above": n}


def _range(low: float, below: float) -> dict:
    return {"min": low, "below": below}


# --------------------------------------------------------------------------------------------
# The configuration tree
# --------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """The base model. ``path`` is a local folder, a hub id, or "demo" (the built-in model)."""

    path: str = DEMO_MODEL
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    trust_remote_code: bool = False
    allow_network: bool = False
    # A bitsandbytes-quantized base under the adapter (QLoRA): "nf4" (4-bit) or "int8".
    quantization: Literal["none", "nf4", "int8"] = "none"

    @property
    def is_demo(self) -> bool:
        return self.path == DEMO_MODEL


@dataclass
class DataSource:
    """One data set. ``columns`` maps the loader's field names to the file's column names.

    A role of a method that takes several sources (ELM's retain: QA rows and text) lists the others
    under ``also`` (``[data.retain.also.persons]``), each with its own file, template and ``weight``
    (its share of the role's loss, relative to the others; 1 when not given)."""

    path: str
    format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    template: str = "auto"
    max_rows: int | None = field(default=None, metadata=_min(1))
    weight: float | None = field(default=None, metadata=_above(0))
    also: dict[str, DataSource] = field(default_factory=dict)

    def sources(self, role: str) -> dict[str, DataSource]:
        """This source and its ``also`` sources by key: ``role``, then ``role.name``."""
        return {role: self, **{f"{role}.{name}": source for name, source in self.also.items()}}


@dataclass
class MethodConfig:
    """The unlearning method; ``params`` are checked later by the method's own declaration."""

    name: str = "grad_diff"
    params: dict[str, int | float | str | bool | list] = field(default_factory=dict)


@dataclass
class LoraConfig:
    """LoRA adapter shape. ``roles`` name projections by role (q, k, v, o, gate, up, down), or are
    ["auto"]: every projection the model has (core/model/lora_plan.py); ``layers`` selects layers."""

    enabled: bool = True
    r: int = field(default=8, metadata=_min(1))
    alpha: float = field(default=16.0, metadata=_above(0))
    dropout: float = field(default=0.0, metadata=_range(0, 1))
    roles: list[str] = field(default_factory=lambda: ["auto"])
    layers: str | None = None


@dataclass
class OptimizerConfig:
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = field(default=1e-4, metadata=_above(0))
    weight_decay: float = field(default=0.01, metadata=_min(0))
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    name: Literal["constant", "linear", "cosine"] = "linear"
    warmup_steps: int = field(default=0, metadata=_min(0))


@dataclass
class TrainingConfig:
    """How long and how to train. Exactly one of ``max_steps`` and ``epochs`` is set."""

    # A file that gives only ``epochs`` means "no step limit", not the default 100 steps.
    max_steps: int | None = field(default=100, metadata={**_min(1), "none_if_given": "epochs"})
    epochs: float | None = field(default=None, metadata=_above(0))
    batch_size: int = field(default=4, metadata=_min(1))
    grad_accum: int = field(default=1, metadata=_min(1))
    max_length: int = field(default=128, metadata=_min(1))
    seed: int = field(default=0, metadata=_min(0))
    # "auto": accelerate launch's setting, else bf16 on a GPU that has it, none on the CPU (core/run/precision.py).
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~1/3 more compute
    threads: int | None = field(default=None, metadata=_min(1))  # torch's intra-op threads; None: core/run/threads.py
    checkpoint_every: int = field(default=50, metadata=_min(1))
    keep_checkpoints: int = field(default=2, metadata=_min(1))  # the newest N are kept
    log_every: int = field(default=1, metadata=_min(1))
    max_grad_norm: float = field(default=1.0, metadata=_above(0))  # gradient clipping


@dataclass
class EvalSetConfig:
    """An extra evaluation set, ``[evaluation.sets.<name>]``: a data file and the role that says
    how its metrics are judged (forget: toward the reference level; retain, general, normal,
    holdout: held; harmful: under the harm threshold; anti-expert: toward the ideal)."""

    path: str
    role: Role
    format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    template: str = "auto"
    max_rows: int | None = field(default=None, metadata=_min(1))


@dataclass
class EvalConfig:
    """The before/after evaluation (core/evaluation): its tier, its reference, how it judges."""

    suite: Literal["none", "fast", "full", "demo"] = "fast"  # "demo": the sizes of "fast" (older files)
    before: bool = True
    after: bool = True
    # A retain model (trained without the forget data): forget quality, PrivLeak and the target
    # level of every forget metric. "demo" is the built-in demo's retain model.
    reference_model: str | None = None
    harm_judge: str | None = None  # "package.module:function" that judges harmful answers
    harm_threshold: float = field(default=0.05, metadata=_range(0, 1))  # harmful-answer rate to reach
    tolerance: float = field(default=0.05, metadata=_range(0, 1))  # how far a kept metric may move
    sets: dict[str, EvalSetConfig] = field(default_factory=dict)


@dataclass
class OutputConfig:
    dir: str = "runs"


@dataclass
class RunConfig:
    """Everything a run needs. Built by the wizard, saved as project TOML, stored with each run.

    ``base_dir`` is the folder of the TOML file the config came from; relative paths resolve
    against it. It is not serialised and takes no part in equality.
    """

    name: str
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: dict[Role, DataSource] = field(default_factory=dict)
    method: MethodConfig = field(default_factory=MethodConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    base_dir: Path | None = field(
        default=None, compare=False, repr=False, metadata={"serialise": False}
    )

    # ---- paths -------------------------------------------------------------------------------

    def resolve_path(self, p: str | os.PathLike) -> Path:
        """Turn a path as written in the config into an absolute path.

        ``demo:NAME`` points into the built-in demo data folder; ``~`` expands; a relative path
        resolves against ``base_dir`` (the TOML file's folder), or the working folder without one.
        """
        text = os.fspath(p)
        if text.startswith(DEMO_PREFIX):
            name = text[len(DEMO_PREFIX) :]
            parts = Path(name).parts
            if not name or Path(name).is_absolute() or ".." in parts:
                raise UserError(
                    f"'{text}' is not a valid demo data path",
                    "Write 'demo:' followed by a file name of the built-in demo data, "
                    "for example 'demo:forget10.jsonl'.",
                )
            return demo_data_dir() / name
        path = Path(text).expanduser()
        if not path.is_absolute():
            base = self.base_dir if self.base_dir is not None else Path.cwd()
            path = Path(base) / path
        return path.resolve()

    def resolve_model_path(self) -> str:
        """The model folder to load: the built-in demo, a local folder, or (network allowed) a hub id."""
        if self.model.is_demo:
            return str(demo_model_dir())
        local = self.resolve_path(self.model.path)
        if local.exists() or not self.model.allow_network:
            return str(local)
        return self.model.path

    def model_source(self) -> str:
        """``resolve_model_path``, or a UserError when it names a folder that does not exist and the
        project does not allow the network (then the name cannot be a hub id to download)."""
        source = self.resolve_model_path()
        if self.model.is_demo or Path(source).exists() or self.model.allow_network:
            return source
        written = self.model.path
        here = self._relative_note()
        if _looks_like_hub_id(written):
            fix = (f"To use the hub model '{written}', set model.allow_network = true (it is downloaded once); "
                   f"or set model.path to the folder of a model you have (relative paths start {here}).")
        else:
            fix = f"Correct model.path (relative paths start {here}), or give the folder's absolute path."
        raise UserError(f"The model '{written}' is not a folder on this computer ({source} does not exist), "
                        "and the project does not allow network use", fix)

    def data_source(self, key: str) -> DataSource:
        """The source of ``key``: a role ("retain") or one of its ``also`` sources ("retain.persons")."""
        role, _, name = key.partition(".")
        return self.data[role].also[name] if name else self.data[role]

    def resolve_data_path(self, role: str) -> Path:
        """The file (or "folder:split") of the data role ``role`` (or of a role's ``also`` source,
        "retain.persons"); a UserError naming it and where relative paths start when it does not exist."""
        written = self.data_source(role).path
        resolved = self.resolve_path(written)
        if split_path(resolved)[0].exists():
            return resolved
        relative = not written.startswith(DEMO_PREFIX) and not Path(written).expanduser().is_absolute()
        where = f" (relative paths start {self._relative_note()})" if relative else ""
        raise UserError(f"The data file of [data.{role}] does not exist: {resolved}",
                        f"Correct data.{role}.path = \"{written}\"{where}, or pick the file again.")

    def _relative_note(self) -> str:
        if self.base_dir is not None:
            return f"next to the project file, in {self.base_dir}"
        return f"in the current folder, {Path.cwd()}, as this configuration has no project file"

    # ---- dict / JSON form --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON- and TOML-ready dict (validated; ``None`` and empty tables omitted)."""
        return _plain(self._checked())

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], base_dir: str | os.PathLike | None = None, source: str | None = None
    ) -> RunConfig:
        """Build and validate a config from a plain dict; errors name the key and ``source``."""
        where = source or "the run configuration"
        config = build(cls, d, where)
        config.base_dir = Path(base_dir) if base_dir is not None else None
        config._check_rules(where)
        return config

    def validate(self) -> None:
        """Raise ``UserError`` if anything in this config is invalid."""
        self._checked()

    def _checked(self) -> RunConfig:
        """A validated, normalised copy (ints in float fields become floats)."""
        checked = RunConfig.from_dict(_plain(self), base_dir=self.base_dir)
        # The rules also run on self: dropping None can hide a "neither is set" mistake.
        self._check_rules("the run configuration")
        return checked

    # ---- TOML form ---------------------------------------------------------------------------

    def to_toml(self) -> str:
        """The canonical TOML text of this config."""
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(
        cls, text: str, base_dir: str | os.PathLike | None = None, source: str | None = None
    ) -> RunConfig:
        """Parse TOML text; syntax errors become ``UserError`` with the line number."""
        where = source or "the project file"
        data = parse_toml(text, where)
        return cls.from_dict(data, base_dir=base_dir, source=where)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        """Read and validate a project TOML file."""
        path = Path(path).expanduser()
        text = read_project_text(path)
        return cls.from_toml(text, base_dir=path.resolve().parent, source=path.name)

    def save(self, path: str | os.PathLike) -> None:
        """Write the canonical TOML atomically (a crash never leaves half a file).

        Paths are kept as written; relative ones stay relative to the folder they were written
        for, so save into the same folder as the file the config came from.
        """
        write_project_text(Path(path).expanduser(), self.to_toml())

    # ---- rules across fields -----------------------------------------------------------------

    def _check_rules(self, where: str) -> None:
        check_rules(self, where)


def _plain(obj: Any) -> Any:
    """Dataclasses to plain dicts in field order, dropping ``None`` and empty tables."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in serialised_fields(type(obj)):
            value = _plain(getattr(obj, f.name))
            if value is None or (isinstance(value, dict) and not value):
                continue
            out[f.name] = value
        return out
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
