"""Saving a project built in the app: where it goes by default, and paths that still point at
the same files when the project is saved into another folder."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from unlearn_studio.core.project.config import DEMO_PREFIX, RunConfig


def slug(name: str) -> str:
    text = "".join(c.lower() if c.isalnum() else "-" for c in name.strip())
    while "--" in text:
        text = text.replace("--", "-")
    return text.strip("-") or "project"


def suggest_project_path(config: RunConfig, folder: str | os.PathLike | None = None) -> Path:
    """``folder``/<slug of the name>.toml, folder defaulting to the config's own; never an existing file."""
    base = Path(folder) if folder is not None else (config.base_dir or Path.cwd())
    path = base / f"{slug(config.name)}.toml"
    number = 2
    while path.exists():
        path = base / f"{slug(config.name)}-{number}.toml"
        number += 1
    return path


def rebased(config: RunConfig, folder: str | os.PathLike) -> RunConfig:
    """A copy whose relative paths are rewritten so that, relative to ``folder``, they name the
    same files as before (absolute where no relative path reaches them); demo paths stay, and
    the output folder stays relative, so runs go beside the saved project."""
    folder = Path(folder).resolve()
    out = copy.deepcopy(config)
    if config.base_dir is not None and Path(config.base_dir).resolve() == folder:
        out.base_dir = folder
        return out

    def move(text: str) -> str:
        if text.startswith(DEMO_PREFIX) or Path(text).expanduser().is_absolute():
            return text
        target = config.resolve_path(text)
        try:
            return os.path.relpath(target, folder)
        except ValueError:  # another drive on Windows
            return str(target)

    for source in out.data.values():
        source.path = move(source.path)
    if not out.model.is_demo and (config.resolve_path(out.model.path).exists() or not out.model.allow_network):
        out.model.path = move(out.model.path)
    out.base_dir = folder
    return out
