"""Checking a project's tables against the configuration dataclasses, and building them.

Generic: it walks the dataclasses' type hints, so a new field needs no checking code. Range limits
come from field metadata ("min", "above", "below"); "none_if_given" names a sibling key that, when
the table gives it, makes the field None instead of its default; "serialise": False keeps a field
out of the tables. Every error is a ``UserError`` that names the dotted key, says what was found
and, for an unknown key, which key was most likely meant (close spellings, the names other tools
use, a key written in the wrong table).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal

from unlearn_studio.core.errors import UserError


def build(cls: type, raw: Any, where: str) -> Any:
    """An instance of dataclass ``cls`` from the plain table ``raw`` (e.g. parsed TOML), checked;
    ``where`` names the source in messages ("project.toml")."""
    return _build(cls, raw, "", where, cls)


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


def serialised_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("serialise", True)]


def _label(path: str) -> str:
    return f"[{path}]" if path else "the top level"


def _build(cls: type, raw: Any, path: str, where: str, root: type) -> Any:
    """Check a table against dataclass ``cls`` and build it; errors name the dotted key."""
    if not isinstance(raw, dict):
        raise UserError(
            f"'{path}' in {where} must be a table, got {_describe(raw)}",
            f"Write it as a table: [{path}] followed by its keys on their own lines.",
        )
    hints = typing.get_type_hints(cls)
    fields = serialised_fields(cls)
    names = [f.name for f in fields]
    for key in raw:
        if key not in names:
            dotted = f"{path}.{key}" if path else key
            guess = _suggest(str(key), path, names, root)
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
        value = _convert(raw[f.name], hints[f.name], dotted, where, root)
        _check_limits(value, f.metadata, dotted, where)
        kwargs[f.name] = value
    return cls(**kwargs)


def _convert(value: Any, hint: Any, path: str, where: str, root: type) -> Any:
    """Check ``value`` against type ``hint``; return it typed (int widens to float)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, where, root)

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
            return _convert(value, members[0], path, where, root)
        # An exact type match wins, so an int in an int|float union stays an int.
        for member in members:
            if _exact(value, member):
                return _convert(value, member, path, where, root)
        for member in members:
            try:
                return _convert(value, member, path, where, root)
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
        return [_convert(v, args[0], f"{path}[{i}]", where, root) for i, v in enumerate(value)]

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
            out[k] = _convert(v, value_hint, f"{path}.{k}", where, root)
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


def _suggest(key: str, path: str, names: list[str], root: type) -> str | None:
    """The dotted key the user most likely meant, or None."""
    prefix = f"{path}." if path else ""
    if _ALIASES.get(key) in names:
        return prefix + _ALIASES[key]
    # A key written in the wrong table, e.g. a top-level "lr" that belongs in [optimizer].
    everywhere = _dotted_keys(root)
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
    for f in serialised_fields(cls):
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
