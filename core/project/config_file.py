"""A project file on disk: read as UTF-8 TOML, written atomically, every failure a ``UserError``
that says what is wrong with the file and what to do."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from unlearn_studio.core.errors import UserError


def read_project_text(path: Path) -> str:
    """The text of the project file at ``path``."""
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
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"The project file {path} is not UTF-8 text (bad byte at offset {e.start})",
            "Save the file as UTF-8 text.",
        ) from None


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """The tables of ``text``; a syntax error names its line and column in ``where``."""
    try:
        return tomllib.loads(text)
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


def write_project_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a crash never leaves half a file)."""
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
