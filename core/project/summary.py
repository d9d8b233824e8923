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
ERRORS_SHOWN = 200


@dataclass
class DatasetSummary:
    """One data role's file as a run would read it: what was found, what is wrong, the first rows."""

    role: str
    path: str
    resolved: str = ""
    format: str = ""
    kind: str = ""
    rows: int = 0  # usable rows
    rows_read: int = 0
    columns_present: list[str] = field(default_factory=list)
    columns_used: dict[str, str] = field(default_factory=dict)  # canonical column -> the file's column
    bad_rows: int = 0
    row_errors: list[str] = field(default_factory=list)  # "file:line: problem", the first ERRORS_SHOWN
    warnings: list[str] = field(default_factory=list)
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
    summary = DatasetSummary(role=role, path=config.data[role].path)
    read_into(summary, config, role)
    return summary


def read_into(summary: DatasetSummary, config: RunConfig, role: str) -> LoadedData | None:
    """Fill ``summary`` from the role's file; the rows read, or None when the file cannot be read
    (its problem is then the summary's ``error``)."""
    source = config.data[role]
    summary.resolved = source.path
    try:
        summary.resolved = str(config.resolve_path(source.path))
        loaded = read_role(config.resolve_data_path(role), role, source)
    except UserError as error:
        summary.error = error
        return None
    summary.format, summary.kind = loaded.format, loaded.kind
    summary.rows, summary.rows_read = loaded.n_rows, loaded.n_read
    summary.columns_present = list(loaded.columns_present)
    summary.columns_used = dict(loaded.columns_used)
    summary.bad_rows = len({e.origin for e in loaded.report.errors})
    summary.row_errors = [str(e) for e in loaded.report.errors[:ERRORS_SHOWN]]
    summary.warnings = list(loaded.report.warnings)
    summary.preview = preview_rows(loaded.rows)
    if source.max_rows is not None and summary.rows > source.max_rows:
        summary.warnings.append(f"only the first {source.max_rows} of {summary.rows} rows are used (max_rows)")
    return loaded


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
