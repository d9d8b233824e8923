"""Where the app's shipped files are (the built-in demo and the ready project files), and how a
data path names a split of a saved data set."""

from __future__ import annotations

from pathlib import Path

import unlearn_studio.resources as _resources


def resources_dir() -> Path:
    return Path(_resources.__file__).resolve().parent


def demo_dir() -> Path:
    """The shipped demo build: data/, model/, retain_model/ and REPORT.json."""
    return resources_dir() / "demo"


def demo_model_dir() -> Path:
    return demo_dir() / "model"


def demo_retain_model_dir() -> Path:
    return demo_dir() / "retain_model"


def demo_data_dir() -> Path:
    return demo_dir() / "data"


def projects_dir() -> Path:
    """The ready project files (projects/ in a checkout, installed beside the resources otherwise)."""
    checkout = resources_dir().parent / "projects"
    return checkout if checkout.is_dir() else resources_dir() / "projects"


def demo_project() -> Path:
    return projects_dir() / "demo.toml"


def split_path(path: str | Path) -> tuple[Path, str | None]:
    """Split ``folder:split`` (a split of a saved DatasetDict) into the folder and the split.

    Only splits when the whole string is not an existing path and the part before the last
    colon is, so Windows drive letters and colons in file names keep working.
    """
    text = str(path)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    head, _, split = text.rpartition(":")
    if head and split and Path(head).is_dir():
        return Path(head), split
    return Path(text), None
