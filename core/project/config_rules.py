"""The rules of a project that tie several fields together; every field alone is checked by the
generic validator (config_validation.py) from its type and metadata."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from unlearn_studio.core.errors import UserError

if TYPE_CHECKING:  # config.py imports this module
    from unlearn_studio.core.project.config import RunConfig


def check_rules(config: RunConfig, where: str) -> None:
    """The rules that tie fields together (each field alone is checked by config_validation.py)."""
    t = config.training
    if (t.max_steps is None) == (t.epochs is None):
        state = "both are set" if t.max_steps is not None else "neither is set"
        raise UserError(
            f"In {where}, exactly one of 'training.max_steps' and 'training.epochs' "
            f"must be set, but {state}",
            "Keep 'training.max_steps' (a step count) or 'training.epochs' (passes over "
            "the forget set), not both.",
        )
    if not config.name.strip():
        raise UserError(f"'name' in {where} is empty", "Give the project a name.")
    for role, source in config.data.items():
        for key, each in source.sources(role).items():
            if not each.path.strip():
                raise UserError(
                    f"'data.{key.replace('.', '.also.')}.path' in {where} is empty",
                    "Give the path of the data file (relative to the project file, or demo:NAME).",
                )
        for name, extra in source.also.items():
            if extra.also or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise UserError(
                    f"[data.{role}.also.{name}] in {where} "
                    + ("has sources of its own" if extra.also else "has a name with characters other than "
                       "letters, digits, '_' and '-'"),
                    f"List every further source of {role} directly under [data.{role}.also], named with "
                    "letters, digits, '_' or '-'.",
                )
    if config.lora.enabled and not config.lora.roles:
        raise UserError(
            f"'lora.roles' in {where} is empty while LoRA is enabled",
            "List the projections to adapt, for example roles = [\"q\", \"v\"].",
        )
    betas = config.optimizer.betas
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise UserError(
            f"'optimizer.betas' in {where} must be two numbers in [0, 1), got {betas}",
            "Write for example betas = [0.9, 0.999].",
        )
