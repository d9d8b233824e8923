"""The public entry point: read a data file for a role, map its columns, validate its rows."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.data.columns import layout_of, multiple_choice_columns, resolve_columns
from unlearn_studio.core.data.formats import detect_format, normalize_format, read_file
from unlearn_studio.core.data.roles import ROLES, Role, get_role
from unlearn_studio.core.data.templates import resolve_template
from unlearn_studio.core.data.validate import RowError, ValidationReport, normalize_row
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.paths import split_path

_STRICT_SHOWN = 5


@dataclass
class LoadedData:
    """A validated data set: canonical rows (each with "_origin") and how it was read."""

    path: str
    role: str
    kind: str  # "qa", "text" or "mcq"
    format: str
    columns_used: dict[str, str]  # canonical -> source column
    rows: list[dict]
    report: ValidationReport
    columns_present: list[str] = field(default_factory=list)
    n_read: int = 0  # rows read from the file, bad ones included
    layout: str = ""  # one of columns.LAYOUTS; the kind when not given
    n_rows: int = field(init=False)

    def __post_init__(self):
        self.n_rows = len(self.rows)
        self.layout = self.layout or self.kind

    def template(self, requested: str, tokenizer=None) -> str:
        """The concrete template for these rows ("auto" follows the layout and the tokenizer)."""
        return resolve_template(requested, self.kind, tokenizer, layout=self.layout)

    @property
    def columns_ignored(self) -> list[str]:
        """Columns in the file that no canonical column uses."""
        used = set(self.columns_used.values())
        return [column for column in self.columns_present if column not in used]


def load_dataset_file(
    path: str | Path,
    *,
    role: str,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    strict: bool = True,
) -> LoadedData:
    """Load ``path`` as data for ``role``.

    ``format`` is "auto" or one of formats.FORMATS; ``columns`` maps canonical names onto the
    file's columns and overrides auto-detection. A `datasets` folder holding several splits is
    read as "folder:split". Whole-file problems (missing path, no rows, not UTF-8, missing
    mapped column, nothing usable for the role) raise UserError. Row problems raise a UserError
    listing the first few with file:line when ``strict``; otherwise the bad rows are left out
    and listed in ``report.errors``.
    """
    role_spec = get_role(role)
    file_path, split = split_path(path)
    if not file_path.exists():
        raise UserError(
            f"Data file not found: {file_path}",
            "Check the path (relative paths start from the current folder) or pick the file again.",
        )
    fmt = normalize_format(format)
    if fmt == "auto":
        fmt = detect_format(file_path)
    result = read_file(file_path, fmt, split)
    name = f"{file_path}:{split}" if split else str(file_path)
    if not result.records:
        raise UserError(
            f"{name} has no rows (the {fmt} data is empty).",
            "Pick a file that contains data, or check that it was saved completely.",
        )
    kind, mapping, warnings = resolve_columns(result.columns, columns, role_spec, name)
    warnings += _role_misfit_warnings(result.columns, kind, mapping, role_spec, name)

    report = ValidationReport(warnings=warnings, notes=list(result.notes))
    rows: list[dict] = []
    for record in result.records:
        if record.error is not None:
            report.errors.append(RowError(record.origin, record.error))
            continue
        row, errors = normalize_row(record.values, mapping, kind, record.origin)
        if row is None:
            report.errors.extend(errors)
        else:
            rows.append(row)
    report.warnings.extend(_quality_warnings(rows, kind, mapping))

    if strict and report.errors:
        bad = len({error.origin for error in report.errors})
        raise UserError(
            f"{name} has {bad} bad row{'s' if bad != 1 else ''} "
            f"({len(result.records)} read):\n{report.summary(_STRICT_SHOWN)}",
            f"Fix or remove these rows; `unlearn-studio data check {name} --role {role}` lists them all.",
        )
    return LoadedData(
        path=name, role=role, kind=kind, format=fmt, columns_used=mapping, rows=rows,
        report=report, columns_present=list(result.columns), n_read=len(result.records),
        layout=layout_of(kind, mapping),
    )


def _role_misfit_warnings(present: list[str], kind: str, mapping: dict[str, str], role: Role,
                          name: str) -> list[str]:
    """A multiple-choice file (WMDP, MMLU) read as question/answer rows trains on the answer index."""
    found = multiple_choice_columns(present)
    if kind != "qa" or found is None:
        return []
    label = found.get("label") or found["answer"]
    if mapping.get("answer") != label:
        return []  # the answer comes from another column the user chose
    fits = [other.name for other in ROLES.values() if "mcq" in other.kinds]
    warning = (f"{name} holds multiple-choice questions (columns {found['question']}, {found['choices']}, "
            f"{label}), but the '{role.name}' role reads {kind} rows: the answer trained on would be the "
            f"'{label}' column (an index such as 0), not the text of a choice. Multiple-choice files "
            f"fit the {' or '.join(repr(f) for f in fits)} role (a concept test before and after "
            f"unlearning); give '{role.name}' question/answer or text rows")
    return [warning]


def _quality_warnings(rows: list[dict], kind: str, mapping: dict[str, str]) -> list[str]:
    """Things that load fine but weaken evaluation: optional columns missing in some rows."""
    warnings = []
    if kind != "qa":
        return warnings
    for column in ("paraphrased_answer", "wrong_answers"):
        if column in mapping:
            lacking = sum(1 for row in rows if not row.get(column))
            if lacking:
                warnings.append(
                    f"{lacking} of {len(rows)} rows have no {column}; they are skipped by the "
                    "evaluation measures that need it"
                )
    return warnings
