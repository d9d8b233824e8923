"""The method registry: every built-in method registers its class here by name.

A method is a module of this package (``npo.py``) or, when it needs several files, a folder whose
``method.py`` holds the class (``elm/method.py``, beside ``elm/losses.py``). The modules are
imported lazily, on the first lookup (``builtin_modules``): they import ``register`` from this
module, so importing them here at import time would be circular.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import UnlearningMethod, check_stages

#: Modules of this package that hold shared machinery, not methods.
SHARED_MODULES = frozenset({"base", "registry", "losses", "presets"})


def builtin_modules() -> list[str]:
    """The modules that define the built-in methods: ``name`` for a one-file method, ``name.method``
    for a method folder (names starting with "_" are skipped)."""
    found = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_") or info.name in SHARED_MODULES:
            continue
        found.append(f"{info.name}.method" if info.ispkg else info.name)
    return sorted(found)

_REGISTRY: dict[str, type[UnlearningMethod]] = {}
_loaded = False


def register(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    """Class decorator: make ``cls`` findable under ``cls.name``."""
    for attribute in ("name", "title", "summary", "paper", "roles"):
        if not hasattr(cls, attribute):
            raise TypeError(f"{cls.__qualname__} must set the class attribute '{attribute}' to be registered")
    check_stages(cls.title, cls.stages)
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise TypeError(f"Two methods are called '{cls.name}': {existing.__qualname__} and {cls.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in builtin_modules():
            importlib.import_module(f"{__package__}.{module}")
        _loaded = True


def all_methods() -> list[type[UnlearningMethod]]:
    """Every registered method class, sorted by name."""
    _load_builtins()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def _normalise(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace(" ", "_")


def get_method(name: str) -> type[UnlearningMethod]:
    """The method class called ``name`` ("grad_diff"; its title "GradDiff" works too).

    An unknown name raises UserError that lists the known names and suggests the closest one.
    """
    _load_builtins()
    key = _normalise(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    by_title = {_normalise(cls.title).replace("_", ""): cls for cls in _REGISTRY.values()}
    if key.replace("_", "") in by_title:
        return by_title[key.replace("_", "")]
    names = sorted(_REGISTRY)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    guess = f"Did you mean '{close[0]}'? " if close else ""
    raise UserError(
        f"Unknown unlearning method '{name}' (method.name)",
        f"{guess}Known methods: {', '.join(names)}.",
    )
