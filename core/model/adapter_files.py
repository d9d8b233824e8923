"""Reading a PEFT adapter folder safely, and checking that it fits a model before PEFT loads it.

A folder may hold adapter_model.safetensors or, from older PEFT, adapter_model.bin: a pickle. It is
opened with ``weights_only=True`` only (plain tensors in plain containers; nothing else can run),
and what it holds must be a mapping of weight names to tensors. torch's own message for a pickle
that holds more suggests loading it unsafely; that advice never reaches the user.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import peft
import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers.pytorch_utils import Conv1D

from unlearn_studio.core.errors import UserError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
LEGACY_WEIGHTS_FILE = "adapter_model.bin"  # older PEFT (and the Ext-Sub authors' adapters)
KEY_PREFIX = "base_model.model."
PICKLE_FIX = ("Use an adapter saved as adapter_model.safetensors (PEFT's default), or, where you trust its source, "
              "load it once with PEFT and save it again with save_pretrained")


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    """adapter_config.json of ``folder`` as a dict; UserError for a missing folder, file or bad JSON."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"The adapter folder {folder} does not exist", "Check the path of the adapter folder.")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{folder} is not a LoRA adapter folder (it has no {CONFIG_FILE})",
                        "Point at the folder a training run saved its adapter to (it holds adapter_config.json)."
                        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{folder / CONFIG_FILE} is not valid JSON: {exc}", "Save the adapter again.") from None
    if not isinstance(config, dict):
        raise UserError(f"{folder / CONFIG_FILE} does not hold a JSON object", "Save the adapter again.")
    return config


def load_adapter_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the adapter in ``folder`` (safetensors, else a weights-only pickle)."""
    folder = Path(folder).expanduser()
    safetensors_path, legacy_path = folder / WEIGHTS_FILE, folder / LEGACY_WEIGHTS_FILE
    if safetensors_path.is_file():
        try:
            with safe_open(str(safetensors_path), framework="pt") as weights:
                return {key: weights.get_tensor(key) for key in weights.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise UserError(f"The adapter weights in {folder} cannot be read: {exc}",
                            "Save the adapter again; the file looks damaged.") from None
    if legacy_path.is_file():
        return _load_pickled_weights(legacy_path)
    raise UserError(f"{folder} holds {CONFIG_FILE} but no {WEIGHTS_FILE}",
                    "Point at the complete adapter folder that PEFT's save_pretrained wrote.")


def _load_pickled_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path} is a pickle that holds more than tensors, so it was not opened: a pickle can run "
                        "any code when it is loaded", PICKLE_FIX) from None
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise UserError(f"The adapter weights {path} cannot be read ({type(exc).__name__})",
                        "Save the adapter again; the file looks damaged.") from None
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in loaded.items()):
        what = type(loaded).__name__ if not isinstance(loaded, dict) else "a mapping with values that are not tensors"
        raise UserError(f"{path} holds {_article(what)}, not a mapping of weight names to tensors, so it is not "
                        "a PEFT adapter", "Point at a folder that PEFT's save_pretrained wrote.")
    return loaded


def _article(what: str) -> str:
    return what if what.startswith("a ") else f"a {what}"


def weight_shapes(folder: str | Path) -> dict[str, tuple[int, ...]]:
    """Each weight's shape, without reading safetensors data."""
    folder = Path(folder).expanduser()
    path = folder / WEIGHTS_FILE
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as weights:
                return {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise UserError(f"The adapter weights in {folder} cannot be read: {exc}",
                            "Save the adapter again; the file looks damaged.") from None
    return {key: tuple(tensor.shape) for key, tensor in load_adapter_weights(folder).items()}


def check_adapter_fits(model: nn.Module, folder: str | Path) -> None:
    """UserError unless the adapter in ``folder`` adapts modules ``model`` has, with their shapes.

    A LoRA pair on a module of shape out x in has lora_A r x in and lora_B out x r; an adapter
    trained on another base names modules this model lacks, or has other shapes.
    """
    folder = Path(folder).expanduser()
    config = read_adapter_config(folder)
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(f"The adapter in {folder} is a {config.get('peft_type')} adapter, not LoRA",
                        "Use a LoRA adapter (Unlearn Studio trains LoRA adapters).")
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    modules = dict(inner.named_modules())
    base = config.get("base_model_name_or_path") or "another model"
    fix = (f"Use an adapter trained on this base model; this one was trained on {base}" if base != "another model"
           else "Use an adapter trained on this base model")
    n_layers = getattr(getattr(inner, "config", None), "num_hidden_layers", None)
    for key, shape in weight_shapes(folder).items():
        name, _, which = key.removeprefix(KEY_PREFIX).rpartition(".lora_")
        if not name or which not in ("A.weight", "B.weight"):
            continue
        module = modules.get(name) or modules.get(name.removesuffix(".base_layer"))
        while module is not None and hasattr(module, "base_layer"):  # already wrapped by PEFT
            module = module.base_layer
        if module is None:
            layers = f" (it has {n_layers} layers)" if n_layers else ""
            raise UserError(f"The adapter in {folder} adapts {name}, which this {type(inner).__name__} does not "
                            f"have{layers}: it was trained on a different base model", fix)
        expected = _lora_shape(module, which[0], shape)
        if expected is not None and tuple(shape) != expected:
            raise UserError(f"The adapter in {folder} does not fit this {type(inner).__name__}: its lora_{which[0]} "
                            f"for {name} is {'x'.join(map(str, shape))}, the model's module needs "
                            f"{'x'.join(map(str, expected))}; it was trained on a different base model", fix)


def _lora_shape(module: nn.Module, which: str, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The shape lora_A/lora_B must have on ``module`` for rank ``shape``'s, or None when not a plain
    projection (expert weights: PEFT checks those)."""
    if isinstance(module, Conv1D):
        in_features, out_features = module.weight.shape
    elif isinstance(module, nn.Linear):
        in_features, out_features = module.in_features, module.out_features
    else:
        return None
    if len(shape) != 2:
        return (-1, -1)
    return (shape[0], in_features) if which == "A" else (out_features, shape[1])


# Written whatever their value: what any PEFT needs to rebuild the adapter and to say what it is.
PORTABLE_KEYS = ("peft_type", "task_type", "base_model_name_or_path", "r", "lora_alpha", "lora_dropout",
                 "target_modules", "bias", "fan_in_fan_out", "inference_mode")


def portable_adapter_config(config: dict[str, Any], base_model_name_or_path: str | None) -> dict[str, Any]:
    """adapter_config.json for an export: the base model named by ``base_model_name_or_path`` (a Hub id,
    or None: a path of this computer would send AutoPeftModel looking for a folder that is not
    there), and only the keys that are not at their defaults. Older PEFT versions refuse keys they
    do not know (PEFT 0.13 stops at ``alora_invocation_tokens``); a key left at its default means
    the same to every version, so leaving it out changes nothing. ``peft_version`` goes too, for the
    same reason (export.json records the versions)."""
    defaults = {}
    for item in dataclasses.fields(peft.LoraConfig):
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
    kept = {key: value for key, value in config.items()
            if key in PORTABLE_KEYS or key not in defaults or value != defaults[key]}
    kept.pop("peft_version", None)
    return {**kept, "base_model_name_or_path": base_model_name_or_path}


@contextmanager
def adapter_load_errors(adapter_dir: str | Path) -> Iterator[None]:
    """PEFT's own failures on a folder that passed the checks (weights of expert parameters that do
    not fit, a config it cannot read) as one message; never torch's advice to unpickle unsafely."""
    try:
        yield
    except pickle.UnpicklingError:
        raise UserError(f"The adapter in {adapter_dir} is a pickle that holds more than tensors, so it was not "
                        "opened: a pickle can run any code when it is loaded", PICKLE_FIX) from None
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        text = str(exc)
        if "size mismatch" in text:
            raise UserError(f"The adapter in {adapter_dir} does not fit this model: its weights have other shapes "
                            "than the model's; it was trained on a different base model",
                            "Use an adapter trained on this base model") from None
        if "weights_only" in text or "Unpickl" in text:
            raise UserError(f"The adapter weights in {adapter_dir} could not be read safely", PICKLE_FIX) from None
        raise UserError(f"PEFT could not load the adapter in {adapter_dir}: {type(exc).__name__}: {text}",
                        "Check that the folder is a complete LoRA adapter saved with save_pretrained") from None
