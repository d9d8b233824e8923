"""Column mapping: which source column feeds each canonical column, and the row kind."""

from collections.abc import Iterable, Mapping

from unlearn_studio.core.data.roles import KINDS, Role
from unlearn_studio.core.errors import UserError

#: canonical column -> common source names, best first (matched case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "question": ("question", "prompt", "instruction", "input", "query", "prefix"),
    "answer": ("answer", "response", "output", "completion", "target", "gt", "continuation"),
    # Alpaca's input (Dolly's context): joined into the prompt after the instruction.
    "input": ("input", "context"),
    # A conversation: the last assistant turn is the answer (core/data/chat.py).
    "messages": ("messages", "conversations", "conversation"),
    "text": ("text", "content", "document", "passage"),
    "choices": ("choices", "options"),
    "label": ("label", "answer_index", "correct"),
    "paraphrased_question": ("paraphrased_question",),
    "paraphrased_answer": ("paraphrased_answer",),
    "wrong_answers": ("wrong_answers", "perturbed_answer", "perturbed_answers", "negatives"),
}
CANONICAL = tuple(ALIASES)

#: How rows are laid out in the file; the template "auto" follows it (a completion is not a question).
LAYOUTS = {
    "qa": "question/answer pairs",
    "chat": "conversations: the last assistant turn is the answer, the turns before it the prompt",
    "alpaca": "instruction, input and output: the input is joined into the prompt after the instruction",
    "completion": "a text and its continuation (MUSE verbmem): the loss is on the continuation only",
    "mcq": "multiple-choice questions",
    "text": "plain text documents",
}
# Source columns that hold a continuation of a text rather than an answer to a question.
_CONTINUATIONS = ("gt", "continuation")

#: Columns each kind needs, and the optional ones it keeps.
REQUIRED = {"qa": ("question", "answer"), "text": ("text",), "mcq": ("question", "choices", "label")}
OPTIONAL = {
    "qa": ("input", "messages", "paraphrased_question", "paraphrased_answer", "wrong_answers"),
    "text": (),
    "mcq": (),
}


def parse_column_args(items: Iterable[str] | None) -> dict[str, str]:
    """Turn CLI items like ``question=prompt`` into a mapping {canonical: source}."""
    mapping: dict[str, str] = {}
    for item in items or ():
        canonical, sep, source = item.partition("=")
        if not sep or not canonical.strip() or not source.strip():
            raise UserError(
                f"Column mapping '{item}' is not of the form canonical=source.",
                "Write it like --column question=prompt (canonical names: " + ", ".join(CANONICAL) + ").",
            )
        mapping[canonical.strip()] = source.strip()
    return mapping


def detect_columns(present: Iterable[str]) -> dict[str, str]:
    """Auto-detect {canonical: source} from the column names present (exact name first, then
    case-insensitive); each source column feeds at most one canonical column."""
    present = list(present)
    by_lower = {}
    for name in present:
        by_lower.setdefault(name.lower(), name)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for canonical, candidates in ALIASES.items():
        for candidate in candidates:
            source = candidate if candidate in present else by_lower.get(candidate)
            if source is not None and source not in used:
                mapping[canonical] = source
                used.add(source)
                break
    return mapping


def resolve_columns(
    present: list[str], explicit: Mapping[str, str] | None, role: Role, file: str
) -> tuple[str, dict[str, str], list[str]]:
    """Pick the row kind for ``role`` and the mapping to use.

    Explicit entries override auto-detection. Returns (kind, mapping limited to the columns
    the kind uses, warnings). Raises UserError for unknown canonical names, mapped columns
    that are missing, or a file that lacks what the role needs.
    """
    explicit = dict(explicit or {})
    unknown = [name for name in explicit if name not in ALIASES]
    if unknown:
        raise UserError(
            f"Unknown canonical column {', '.join(repr(n) for n in unknown)} in the column mapping for {file}.",
            f"Map onto these names: {', '.join(CANONICAL)}.",
        )
    missing = [(c, s) for c, s in explicit.items() if s not in present]
    if missing:
        canonical, source = missing[0]
        raise UserError(
            f"Column '{source}' (mapped to {canonical}) is not in {file}. "
            f"Columns present: {', '.join(present) or '(none)'}.",
            f"Map {canonical} onto one of the columns present, e.g. --column {canonical}=<column>.",
        )
    mapping = detect_columns(c for c in present if c not in explicit.values())
    mapping = {c: s for c, s in mapping.items() if c not in explicit}
    mapping.update(explicit)
    _prefer_one_qa_source(mapping, explicit)
    # Multiple-choice files often keep the correct index in "answer" (MMLU and friends).
    if "mcq" in role.kinds and "choices" in mapping and "label" not in mapping and "answer" in mapping \
            and "answer" not in explicit:
        mapping["label"] = mapping.pop("answer")

    kind = _choose_kind(mapping, explicit, role, present, file)
    wanted = REQUIRED[kind] + OPTIONAL[kind]
    warnings = [
        f"column mapping {c}={s} is not used: {role.name} rows here are {kind} ({KINDS[kind]})"
        for c, s in explicit.items() if c not in wanted
    ]
    return kind, {c: mapping[c] for c in wanted if c in mapping}, warnings


def _prefer_one_qa_source(mapping: dict[str, str], explicit: dict[str, str]) -> None:
    """A conversation column and question/answer columns are two sources of the same row: the
    one the user mapped wins, else the conversation (UltraChat's "prompt" column only repeats
    its first user turn)."""
    if "messages" not in mapping:
        return
    if {"question", "answer"} & explicit.keys() and "messages" not in explicit:
        del mapping["messages"]
    else:
        for column in ("question", "answer", "input"):
            if column not in explicit:
                mapping.pop(column, None)


def _choose_kind(mapping: dict, explicit: dict, role: Role, present: list[str], file: str) -> str:
    def complete(kind: str) -> bool:
        if kind == "qa" and "messages" in mapping:
            return True  # question and answer come from the conversation
        return all(column in mapping for column in REQUIRED[kind])

    # An explicit text mapping without question/answer means the user wants text rows.
    if "text" in explicit and not {"question", "answer"} & explicit.keys() and "text" in role.kinds:
        return "text"
    for kind in role.kinds:
        if complete(kind):
            return kind
    needs = " or ".join(
        f"{kind} rows ({', '.join(REQUIRED[kind])})" for kind in role.kinds
    )
    lacking = [c for c in REQUIRED[role.kinds[0]] if c not in mapping]
    example = lacking[0] if lacking else REQUIRED[role.kinds[0]][0]
    raise UserError(
        f"{file} has no columns for the '{role.name}' role, which needs {needs}. "
        f"Columns present: {', '.join(present) or '(none)'}.",
        f"Map the columns explicitly, e.g. --column {example}=<column> "
        f"(recognised names for {example}: {', '.join(ALIASES[example])}).",
    )


def layout_of(kind: str, mapping: dict[str, str]) -> str:
    """The layout of rows of ``kind`` read through ``mapping`` (one of LAYOUTS)."""
    if kind != "qa":
        return kind
    if "messages" in mapping:
        return "chat"
    if "input" in mapping:
        return "alpaca"
    if mapping.get("answer", "").lower() in _CONTINUATIONS or mapping.get("question", "").lower() == "prefix":
        return "completion"
    return "qa"


def multiple_choice_columns(present: Iterable[str]) -> dict[str, str] | None:
    """The question/choices/answer columns of a multiple-choice file, or None when it is not one."""
    found = detect_columns(present)
    if "choices" in found and "question" in found and ({"answer", "label"} & found.keys()):
        return found
    return None
