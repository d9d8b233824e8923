"""The one typed run configuration (``RunConfig``) and its TOML form.

A project file is TOML whose tables mirror the dataclasses below. Validation is generic: it walks
the type hints of the dataclasses, so adding a field needs no extra checking code. Range limits
are declared in field metadata (``_min``/``_above``/``_below``); the few rules that tie fields
together live in ``RunConfig._check_rules``.

Canonical text: keys in dataclass field order (TOML puts sub-tables after plain keys), ``None``
omitted (TOML has no null; a missing key loads as its default), empty tables omitted, floats
written with ``repr`` so they read back bit-for-bit.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tempfile
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from unlearn_studio.core.data.formats import split_path
from unlearn_studio.core.data.roles import ROLES as _ROLE_TABLE
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.paths import demo_data_dir, demo_model_dir

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

    @property
    def is_demo(self) -> bool:
        return self.path == DEMO_MODEL


@dataclass
class DataSource:
    """One data set. ``columns`` maps the loader's field names to the file's column names."""

    path: str
    format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    template: str = "auto"
    max_rows: int | None = field(default=None, metadata=_min(1))


@dataclass
class MethodConfig:
    """The unlearning method; ``params`` are checked later by the method's own declaration."""

    name: str = "grad_diff"
    params: dict[str, int | float | str | bool | list] = field(default_factory=dict)


@dataclass
class LoraConfig:
    """LoRA adapter shape. ``roles`` name projections by role; ``layers`` selects layers."""

    enabled: bool = True
    r: int = field(default=8, metadata=_min(1))
    alpha: float = field(default=16.0, metadata=_above(0))
    dropout: float = field(default=0.0, metadata=_range(0, 1))
    roles: list[str] = field(default_factory=lambda: ["q", "k", "v", "o", "gate", "up", "down"])
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
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
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

    def resolve_data_path(self, role: str) -> Path:
        """The file (or "folder:split") of the data role ``role``; a UserError naming the role and
        where relative paths start when it does not exist."""
        written = self.data[role].path
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
        config = _build(cls, d, "", where)
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
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            message = str(e)
            m = re.search(r"\(at line (\d+), column (\d+)\)", message)
            if m:
                detail = message[: m.start()].strip()
                problem = f"Syntax error in {where} at line {m.group(1)}, column {m.group(2)}: {detail}"
            else:
                problem = f"Syntax error in {where}: {message}"
            raise UserError(
                problem,
                "Fix the TOML at that line (strings need quotes, tables are written [name]).",
            ) from None
        return cls.from_dict(data, base_dir=base_dir, source=where)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        """Read and validate a project TOML file."""
        path = Path(path).expanduser()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UserError(
                f"The project file {path} does not exist",
                "Check the path, or create a project in the app and save it there.",
            ) from None
        except IsADirectoryError:
            raise UserError(
                f"{path} is a folder, not a project file",
                "Pass the path of a project .toml file.",
            ) from None
        except OSError as e:
            raise UserError(
                f"The project file {path} cannot be read: {e.strerror}",
                "Check that the file exists and that you may read it.",
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"The project file {path} is not UTF-8 text (bad byte at offset {e.start})",
                "Save the file as UTF-8 text.",
            ) from None
        return cls.from_toml(text, base_dir=path.resolve().parent, source=path.name)

    def save(self, path: str | os.PathLike) -> None:
        """Write the canonical TOML atomically (a crash never leaves half a file).

        Paths are kept as written; relative ones stay relative to the folder they were written
        for, so save into the same folder as the file the config came from.
        """
        path = Path(path).expanduser()
        text = self.to_toml()
        folder = path.resolve().parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise UserError(
                f"The project file {path} cannot be written: {e.strerror}",
                "Choose a folder you can write to.",
            ) from None

    # ---- rules across fields -----------------------------------------------------------------

    def _check_rules(self, where: str) -> None:
        t = self.training
        if (t.max_steps is None) == (t.epochs is None):
            state = "both are set" if t.max_steps is not None else "neither is set"
            raise UserError(
                f"In {where}, exactly one of 'training.max_steps' and 'training.epochs' "
                f"must be set, but {state}",
                "Keep 'training.max_steps' (a step count) or 'training.epochs' (passes over "
                "the forget set), not both.",
            )
        if not self.name.strip():
            raise UserError(f"'name' in {where} is empty", "Give the project a name.")
        for role, source in self.data.items():
            if not source.path.strip():
                raise UserError(
                    f"'data.{role}.path' in {where} is empty",
                    "Give the path of the data file (relative to the project file, or demo:NAME).",
                )
        if self.lora.enabled and not self.lora.roles:
            raise UserError(
                f"'lora.roles' in {where} is empty while LoRA is enabled",
                "List the projections to adapt, for example roles = [\"q\", \"v\"].",
            )
        betas = self.optimizer.betas
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise UserError(
                f"'optimizer.betas' in {where} must be two numbers in [0, 1), got {betas}",
                "Write for example betas = [0.9, 0.999].",
            )


# --------------------------------------------------------------------------------------------
# Generic validation driven by type hints
# --------------------------------------------------------------------------------------------

_TYPE_WORDS = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean (true or false)",
    list: "a list",
}


def _describe(value: Any) -> str:
    """How a value found in the file is named in an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"list {value!r}"
    return f"{type(value).__name__} {value!r}"


def _serialised_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("serialise", True)]


def _label(path: str) -> str:
    return f"[{path}]" if path else "the top level"


def _build(cls: type, raw: Any, path: str, where: str) -> Any:
    """Check a table against dataclass ``cls`` and build it; errors name the dotted key."""
    if not isinstance(raw, dict):
        raise UserError(
            f"'{path}' in {where} must be a table, got {_describe(raw)}",
            f"Write it as a table: [{path}] followed by its keys on their own lines.",
        )
    hints = typing.get_type_hints(cls)
    fields = _serialised_fields(cls)
    names = [f.name for f in fields]
    for key in raw:
        if key not in names:
            dotted = f"{path}.{key}" if path else key
            guess = _suggest(str(key), path, names)
            hint = f"Did you mean '{guess}'? " if guess else ""
            raise UserError(
                f"Unknown key '{dotted}' in {where}",
                f"{hint}Valid keys in {_label(path)}: {', '.join(names)}.",
            )
    kwargs = {}
    for f in fields:
        dotted = f"{path}.{f.name}" if path else f.name
        if f.name not in raw:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                raise UserError(
                    f"Missing key '{dotted}' in {where}",
                    f"Add {f.name} = ... to {_label(path)}.",
                )
            if f.metadata.get("none_if_given") in raw:
                kwargs[f.name] = None
            continue
        value = _convert(raw[f.name], hints[f.name], dotted, where)
        _check_limits(value, f.metadata, dotted, where)
        kwargs[f.name] = value
    return cls(**kwargs)


def _convert(value: Any, hint: Any, path: str, where: str) -> Any:
    """Check ``value`` against type ``hint``; return it typed (int widens to float)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, where)

    if origin is Literal:
        if value in args and type(value) is type(args[0]):
            return value
        choices = ", ".join(repr(a) for a in args)
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint_text = f"Did you mean {close[0]!r}? " if close else ""
        raise UserError(
            f"'{path}' in {where} must be one of {choices}, got {_describe(value)}",
            f"{hint_text}Use one of {choices}.",
        )

    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if value is None and len(members) < len(args):
            return None
        if len(members) == 1:
            return _convert(value, members[0], path, where)
        # An exact type match wins, so an int in an int|float union stays an int.
        for member in members:
            if _exact(value, member):
                return _convert(value, member, path, where)
        for member in members:
            try:
                return _convert(value, member, path, where)
            except UserError:
                pass
        words = [_TYPE_WORDS.get(typing.get_origin(m) or m, str(m)) for m in members]
        expected = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
        raise UserError(
            f"'{path}' in {where} must be {expected}, got {_describe(value)}",
            f"Change the value of '{path}'.",
        )

    if origin is list or hint is list:
        if not isinstance(value, list):
            raise _type_error(path, where, list, value)
        if not args:
            return list(value)
        return [_convert(v, args[0], f"{path}[{i}]", where) for i, v in enumerate(value)]

    if origin is dict:
        key_hint, value_hint = args
        if not isinstance(value, dict):
            raise UserError(
                f"'{path}' in {where} must be a table, got {_describe(value)}",
                f"Write it as a table: [{path}] followed by its keys.",
            )
        out = {}
        for k, v in value.items():
            if typing.get_origin(key_hint) is Literal and k not in typing.get_args(key_hint):
                allowed = typing.get_args(key_hint)
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint_text = f"Did you mean '{path}.{close[0]}'? " if close else ""
                raise UserError(
                    f"Unknown key '{path}.{k}' in {where}",
                    f"{hint_text}Valid keys in [{path}]: {', '.join(allowed)}.",
                )
            out[k] = _convert(v, value_hint, f"{path}.{k}", where)
        return out

    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(path, where, bool, value)
    if hint is int:
        # bool is a subclass of int in Python, but true is not a number in a config.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(path, where, int, value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(
                    f"'{path}' in {where} must be a finite number, got {_describe(value)}",
                    f"Give '{path}' an ordinary number.",
                )
            return float(value)
        raise _type_error(path, where, float, value)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _type_error(path, where, str, value)
    if hint is Any:
        return value
    raise TypeError(f"config field {path} has a type the validator does not know: {hint!r}")


# Names other tools (transformers, PEFT) use for our keys; difflib cannot see that "rank" is "r".
_ALIASES = {
    "rank": "r",
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "target_modules": "roles",
    "learning_rate": "lr",
    "steps": "max_steps",
    "num_train_epochs": "epochs",
    "num_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "max_seq_length": "max_length",
    "seq_len": "max_length",
    "warmup": "warmup_steps",
    "type": "name",
    "model_name_or_path": "path",
    "file": "path",
}


def _suggest(key: str, path: str, names: list[str]) -> str | None:
    """The dotted key the user most likely meant, or None."""
    prefix = f"{path}." if path else ""
    if _ALIASES.get(key) in names:
        return prefix + _ALIASES[key]
    # A key written in the wrong table, e.g. a top-level "lr" that belongs in [optimizer].
    everywhere = _dotted_keys(RunConfig)
    leaf = _ALIASES.get(key, key)
    for dotted in everywhere:
        if dotted.rsplit(".", 1)[-1] == leaf:
            return dotted
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return prefix + close[0]
    close = difflib.get_close_matches(key, [d.rsplit(".", 1)[-1] for d in everywhere], n=1, cutoff=0.8)
    if close:
        return next(d for d in everywhere if d.rsplit(".", 1)[-1] == close[0])
    return None


def _dotted_keys(cls: type, path: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in _serialised_fields(cls):
        dotted = f"{path}.{f.name}" if path else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(_dotted_keys(hints[f.name], dotted))
        else:
            out.append(dotted)
    return out


def _exact(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return type(value) is origin


def _type_error(path: str, where: str, expected: type, value: Any) -> UserError:
    fix = f"Change the value of '{path}'."
    if isinstance(value, str) and expected in (int, float):
        fix = f"Remove the quotes: {path.rsplit('.', 1)[-1]} = {value}"
    return UserError(f"'{path}' in {where} must be {_TYPE_WORDS[expected]}, got {_describe(value)}", fix)


def _check_limits(value: Any, meta: typing.Mapping, path: str, where: str) -> None:
    if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if "min" in meta and value < meta["min"]:
        raise UserError(
            f"'{path}' in {where} must be at least {meta['min']}, got {value!r}",
            f"Give '{path}' a value of {meta['min']} or more.",
        )
    if "above" in meta and not value > meta["above"]:
        raise UserError(
            f"'{path}' in {where} must be greater than {meta['above']}, got {value!r}",
            f"Give '{path}' a positive value.",
        )
    if "below" in meta and not value < meta["below"]:
        raise UserError(
            f"'{path}' in {where} must be below {meta['below']}, got {value!r}",
            f"Give '{path}' a value below {meta['below']}.",
        )


def _plain(obj: Any) -> Any:
    """Dataclasses to plain dicts in field order, dropping ``None`` and empty tables."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in _serialised_fields(type(obj)):
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
