"""Row-level validation: turn raw records into canonical rows, and report what is wrong."""

import string
from dataclasses import dataclass, field

from unlearn_studio.core.data.chat import BadConversation, conversation_row
from unlearn_studio.core.data.columns import OPTIONAL, REQUIRED
from unlearn_studio.core.data.formats import Origin
from unlearn_studio.core.data.literals import NotAList, looks_like_list, parse_list_text


@dataclass(frozen=True)
class RowError:
    """One bad row: where it is and what is wrong with it."""

    origin: Origin
    problem: str

    @property
    def file(self) -> str:
        return self.origin.file

    @property
    def line(self) -> int:
        return self.origin.line

    def __str__(self) -> str:
        return f"{self.origin}: {self.problem}"


@dataclass
class ValidationReport:
    """Bad rows, warnings (the data loads but something looks off) and notes (how it was read)."""

    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self, limit: int = 5) -> str:
        """The first ``limit`` errors, one per line, and how many more there are."""
        lines = [f"  {error}" for error in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"  ... and {len(self.errors) - limit} more")
        return "\n".join(lines)


class _Invalid(Exception):
    """A value that cannot be used; carries the message for the report."""


def normalize_row(
    values: dict, mapping: dict[str, str], kind: str, origin: Origin
) -> tuple[dict | None, list[RowError]]:
    """Build the canonical row for ``values``, or return the problems found in it.

    Numbers are accepted where text is expected (a birth year is a fine answer); lists, objects
    and true/false are not. Every problem in the row is reported, not just the first.
    """
    row: dict = {}
    errors: list[RowError] = []
    from_conversation = kind == "qa" and "messages" in mapping
    for canonical in REQUIRED[kind] + OPTIONAL[kind]:
        if canonical not in mapping or (from_conversation and canonical in ("question", "answer")):
            continue
        source = mapping[canonical]
        named = canonical if source == canonical else f"{canonical} (column '{source}')"
        required = canonical in REQUIRED[kind] or canonical == "messages"
        if source not in values:
            if required:
                errors.append(RowError(origin, f"missing column {named}"))
            else:
                row[canonical] = [] if canonical == "wrong_answers" else None
            continue
        try:
            if canonical == "messages":
                row.update(_conversation(values[source]))
            elif canonical == "choices":
                row[canonical] = _choices(values[source])
            elif canonical == "label":
                continue  # needs the choices; handled below
            elif canonical == "wrong_answers":
                row[canonical] = _string_list(values[source])
            elif canonical in REQUIRED[kind]:
                row[canonical] = _text(values[source])
            else:
                row[canonical] = _optional_text(values[source])
        except _Invalid as exc:
            errors.append(RowError(origin, f"{named}: {exc}"))
    if kind == "mcq" and "label" in mapping and mapping["label"] in values and "choices" in row:
        try:
            row["label"] = _label(values[mapping["label"]], row["choices"])
        except _Invalid as exc:
            errors.append(RowError(origin, f"label (column '{mapping['label']}'): {exc}"))
    if errors:
        return None, errors
    context = row.pop("input", None)
    if context:
        row["question"] = f"{row['question']}\n\n{context}"
    row["_origin"] = origin
    return row, []


def _text(value) -> str:
    if value is None:
        raise _Invalid("empty (no value)")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Invalid(f"wrong type: expected text, found {_type_name(value)}")
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        raise _Invalid("empty")
    return text


def _optional_text(value) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _text(value)


def _maybe_list_text(value):
    """CSV cells hold lists as text (JSON, or the Python/NumPy repr pandas writes); read them
    when they look like one, literals only."""
    if looks_like_list(value):
        try:
            return parse_list_text(value)
        except NotAList as exc:
            raise _Invalid(str(exc)) from None
    return value


def _conversation(value) -> dict:
    try:
        return conversation_row(value)
    except BadConversation as exc:
        raise _Invalid(f"the conversation {exc}") from None


def _choices(value) -> list[str]:
    value = _maybe_list_text(value)
    if not isinstance(value, (list, tuple)):
        raise _Invalid(f"wrong type: expected a list of at least 2 strings, found {_type_name(value)}")
    if len(value) < 2:
        raise _Invalid(f"expected a list of at least 2 strings, found {len(value)} item(s)")
    try:
        return [_text(choice) for choice in value]
    except _Invalid as exc:
        raise _Invalid(f"every choice must be non-empty text ({exc})") from None


def _string_list(value) -> list[str]:
    if value is None:
        return []
    value = _maybe_list_text(value)
    if isinstance(value, str):
        return [value] if value.strip() else []
    if not isinstance(value, (list, tuple)):
        raise _Invalid(f"wrong type: expected a list of strings, found {_type_name(value)}")
    try:
        return [_text(item) for item in value]
    except _Invalid as exc:
        raise _Invalid(f"every item must be non-empty text ({exc})") from None


def _label(value, choices: list[str]) -> int:
    """The index of the correct choice: an integer, a digit string, a letter (A, B, ...) or the
    text of the choice itself."""
    if isinstance(value, bool) or value is None:
        raise _Invalid(f"wrong type: expected the index of the correct choice, found {_type_name(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            value = int(text)
        elif len(text) == 1 and text.upper() in string.ascii_uppercase[: len(choices)]:
            value = string.ascii_uppercase.index(text.upper())
        elif text in choices:
            value = choices.index(text)
        else:
            raise _Invalid(f"'{value}' is not an index, a letter or one of the choices")
    if not isinstance(value, int):
        raise _Invalid(f"wrong type: expected the index of the correct choice, found {_type_name(value)}")
    if not 0 <= value < len(choices):
        raise _Invalid(f"{value} is out of range for {len(choices)} choices (0..{len(choices) - 1})")
    return value


def _type_name(value) -> str:
    names = {list: "a list", tuple: "a list", dict: "an object", bool: "true/false",
             type(None): "nothing", str: "text", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
