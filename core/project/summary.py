"""What a project file holds, checked: each data set read and validated, and the model's facts.

Used by the app's project page and by `unlearn-studio data check`-style previews; it reads, never
writes, and a bad data set or model is reported in its summary rather than raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.data.loader import LoadedData, load_dataset_file
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.loading import ModelFacts, describe_model_folder, require_model_files
from unlearn_studio.core.project.config import DataSource, RunConfig

PREVIEW_ROWS = 50


@dataclass
class DatasetSummary:
    role: str
    path: str
    resolved: str
    format: str = ""
    kind: str = ""
    rows: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    bad_rows: int = 0
    preview: list[dict[str, str]] = field(default_factory=list)  # the first rows, canonical columns as text
    error: UserError | None = None  # a whole-file problem (missing, empty, malformed)

    @property
    def problem(self) -> str:
        return str(self.error) if self.error else ""


@dataclass
class ModelSummary:
    path: str
    facts: ModelFacts | None = None
    error: UserError | None = None

    @property
    def problem(self) -> str:
        return str(self.error) if self.error else ""


def read_role(resolved: Path, role: str, source: DataSource) -> LoadedData:
    """A role's (resolved) file read leniently with its source's format and columns: bad rows are
    reported, not raised; a whole-file problem raises UserError."""
    return load_dataset_file(resolved, role=role, format=source.format, columns=source.columns or None, strict=False)


def preview_rows(rows: list[dict]) -> list[dict[str, str]]:
    """The first PREVIEW_ROWS rows as text cells, without internal ("_") and empty fields."""
    return [{key: _cell(value) for key, value in row.items() if not key.startswith("_") and value not in (None, [])}
            for row in rows[:PREVIEW_ROWS]]


def summarize_dataset(config: RunConfig, role: str) -> DatasetSummary:
    source = config.data[role]
    summary = DatasetSummary(role=role, path=source.path, resolved=source.path)
    try:
        summary.resolved = str(config.resolve_path(source.path))
        resolved = config.resolve_data_path(role)
        loaded = read_role(resolved, role, source)
    except UserError as error:
        summary.error = error
        return summary
    summary.format = loaded.format
    summary.kind = loaded.kind
    summary.rows = loaded.n_rows
    summary.columns = dict(loaded.columns_used)
    summary.bad_rows = len(loaded.report.errors)
    summary.preview = preview_rows(loaded.rows)
    return summary


def _cell(value) -> str:
    if isinstance(value, list):
        return " | ".join(map(str, value))
    return str(value)


def summarize_model(config: RunConfig) -> ModelSummary:
    source = config.resolve_model_path()
    folder = Path(source)
    summary = ModelSummary(path=source)
    try:
        config.model_source()
        summary.facts = describe_model_folder(source, trust_remote_code=config.model.trust_remote_code,
                                              allow_network=config.model.allow_network)
        if folder.is_dir():
            require_model_files(folder, str(folder))
    except UserError as error:
        summary.error = error
    return summary
