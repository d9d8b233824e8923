"""Data sets: roles, file formats, column mapping, prompt templates and validation.

The lowest layer: imports only the shared modules (errors)."""

from unlearn_studio.core.data.formats import FORMATS, Origin
from unlearn_studio.core.data.loader import LoadedData, load_dataset_file
from unlearn_studio.core.data.roles import KINDS, ROLES, Role
from unlearn_studio.core.data.templates import (
    IGNORE_INDEX,
    TEMPLATES,
    collate,
    format_prompt,
    pad_token_id_for,
    resolve_template,
    tokenize_example,
    tokenize_rows,
)
from unlearn_studio.core.data.validate import RowError, ValidationReport

__all__ = [
    "FORMATS", "IGNORE_INDEX", "KINDS", "ROLES", "TEMPLATES", "LoadedData", "Origin", "Role",
    "RowError", "ValidationReport", "collate", "format_prompt", "load_dataset_file",
    "pad_token_id_for", "resolve_template", "tokenize_example", "tokenize_rows",
]
