"""What the audit attacks: one set of the project's evaluation and its headline forget metric, the
data the run forgot (its slice is the first relearning attack), and the data it relearns from.

The target is the set a person reads first for "is it gone": among the suite's forget, mcq and
harmful sets (views), a qa set with a ``value`` column first (the demo persons), then multiple
choice (a saga), memorized records, harmful questions (with a judge), other qa sets, text; within
one kind a held-out view first (the paraphrase view, or a file the run did not train on). Its
metric is the evaluation's headline metric for that kind: value accuracy, multiple-choice accuracy,
memorization accuracy (MA), harmful-answer rate, answer probability (text).

Items "in the slice" are left out of the relearning measurements: on the file the slice was taken
from, the same items (by id); on another file, the items whose fact (value, key steps, correct
choice, short answer, record suffix) is written in a slice row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from unlearn_studio.core.data.formats import detect_format, normalize_format, read_file
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.scoring import item_id
from unlearn_studio.core.evaluation.suite import PARAPHRASE, TRAINED, EvalSuite, LoadedSet

TARGET_ROLES = ("forget", "mcq", "harmful")
FORGOTTEN_DATA_ROLES = ("forget", "harmful")  # the data role a run forgets, in this order
RELATED_ROLES = ("retain", "normal")  # related data without the forget facts
GENERAL_ROLE = "general"
GROUP_COLUMNS = ("person_id", "person", "saga", "subject", "entity", "topic")  # rows about the same subject
NAME_COLUMNS = ("person", "saga", "subject", "entity", "topic")  # how a framing names the subject
SHORT_ANSWER_WORDS = 4  # an answer this short is the fact itself (a saga's "Ashgrave")


@dataclass
class Target:
    """The attacked set (the headline view, all its rows) and its metric."""

    loaded: LoadedSet
    metric: str
    trained: LoadedSet | None = None  # the trained phrasing, when ``loaded`` is its paraphrase view
    holdout: LoadedSet | None = None  # the partner the evaluation's target level comes from
    groups: dict[str, str] = field(default_factory=dict)  # item id -> the subject it is about (few-shot)
    subjects: dict[str, str] = field(default_factory=dict)  # item id -> the subject's name (framing)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def kind(self) -> str:
        return self.loaded.kind

    def describe(self) -> dict:
        return {"set": self.name, "source": self.loaded.spec.name, "view": self.loaded.view, "kind": self.kind,
                "role": self.loaded.role, "metric": self.metric, "rows": len(self.loaded.rows)}


def metric_of(loaded: LoadedSet, has_judge: bool) -> str | None:
    """The headline forget metric of a set of this kind and role (None: none it can measure)."""
    if loaded.kind == "qa":
        if loaded.role == "harmful":
            return "harmful_rate" if has_judge else None
        return "value_acc"
    return {"mcq": "accuracy", "memorization": "ma", "text": "prob"}.get(loaded.kind)


def _rank(loaded: LoadedSet, trained_paths: set) -> tuple[int, int]:
    has_value = any(row.get("value") for row in loaded.rows)
    if loaded.kind == "qa" and loaded.role != "harmful":
        kind = 0 if has_value else 4
    else:
        kind = {"mcq": 1, "memorization": 2, "qa": 3, "text": 5}[loaded.kind]
    held_out = loaded.view == PARAPHRASE or loaded.spec.path not in trained_paths
    return kind, 0 if held_out else 1


def forgotten_role(config) -> str | None:
    return next((role for role in FORGOTTEN_DATA_ROLES if role in config.data), None)


def choose_target(config, suite: EvalSuite, loaded: list[LoadedSet]) -> Target:
    """The set the audit attacks (a UserError when the project has none it can measure)."""
    has_judge = suite.harm_judge is not None
    trained_paths = {config.resolve_path(source.path) for source in config.data.values()}
    candidates = [s for s in loaded if s.role in TARGET_ROLES and metric_of(s, has_judge) is not None and s.rows]
    if not candidates:
        raise UserError(f"The project '{config.name}' has no forget, multiple-choice or harmful set that the audit "
                        "can measure, so there is nothing to attack.",
                        "The audit checks what a run forgot: give the project a forget (or harmful) data role, or "
                        "an [evaluation.sets.<name>] with role \"forget\" (harmful sets need evaluation.harm_judge).")
    chosen = min(candidates, key=lambda s: (_rank(s, trained_paths), candidates.index(s)))
    trained = None
    if chosen.view == PARAPHRASE:
        trained = next(s for s in loaded if s.spec is chosen.spec and s.view == TRAINED)
    holdout = next((s for s in loaded if s.role == "holdout" and s.kind == chosen.kind and s.view == chosen.view),
                   None)
    return Target(chosen, metric_of(chosen, has_judge), trained, holdout, *subjects_of(chosen))


def _first_of(columns: dict, names: tuple[str, ...]) -> str | None:
    return next((str(columns[c]) for c in names if columns.get(c)), None)


def file_columns(loaded: LoadedSet) -> list[dict]:
    """Every column of the file's record of each row (the evaluation keeps only the columns it
    measures with), in row order."""
    file_path, split = loaded.spec.file()
    fmt = normalize_format(loaded.spec.format)
    raw = read_file(file_path, detect_format(file_path) if fmt == "auto" else fmt, split)
    values = {record.origin: record.values or {} for record in raw.records}
    return [values.get(row.get("_origin"), {}) for row in loaded.rows]


def subjects_of(loaded: LoadedSet) -> tuple[dict[str, str], dict[str, str]]:
    """Per item id, the subject its row is about (a person's id, a saga) and the subject's name."""
    groups, names = {}, {}
    for index, (row, columns) in enumerate(zip(loaded.rows, file_columns(loaded), strict=True)):
        group, name = _first_of(columns, GROUP_COLUMNS), _first_of(columns, NAME_COLUMNS)
        if group is not None:
            groups[item_id(row, index)] = group
        if name is not None:
            names[item_id(row, index)] = name
    return groups, names


def forgotten_set(config, loaded: list[LoadedSet]) -> LoadedSet | None:
    """The run's forget data as the evaluation reads it (the trained view of the role's set)."""
    role = forgotten_role(config)
    return next((s for s in loaded if s.spec.name == role and s.view == TRAINED), None)


def take_slice(rows: list[dict], share: float, seed: int) -> list[int]:
    """The indices of a seeded ``share`` of ``rows`` (at least one row), in file order."""
    count = max(1, round(len(rows) * share))
    return sorted(random.Random(seed).sample(range(len(rows)), min(count, len(rows))))


def _row_text(row: dict) -> str:
    if "text" in row:
        return row["text"]
    return " ".join(str(row.get(k, "")) for k in ("question", "answer"))


def fact_keys(row: dict) -> list[str]:
    """What states an item's fact, for the content rule (empty: the rule cannot tell)."""
    if row.get("value"):
        return [str(row["value"])]
    if row.get("key_steps"):
        return [str(step) for step in row["key_steps"]]
    if "choices" in row:
        return [str(row["choices"][row["label"]])]
    if row.get("suffix"):
        return [str(row["suffix"]).strip()]
    answer = str(row.get("answer", ""))
    return [answer] if answer and len(answer.split()) <= SHORT_ANSWER_WORDS else []


def outside_slice(target: LoadedSet, source: LoadedSet, taken: list[int]) -> tuple[list[dict], int]:
    """The target's rows not in the slice (rows ``taken`` of ``source``), and how many were left out."""
    if target.spec.path == source.spec.path:
        ids = {item_id(source.rows[i], i) for i in taken}
        kept = [row for index, row in enumerate(target.rows) if item_id(row, index) not in ids]
    else:
        texts = [_row_text(source.rows[i]).lower() for i in taken]
        kept = [row for row in target.rows
                if not any(key.lower() in text for key in fact_keys(row) for text in texts)]
    return kept, len(target.rows) - len(kept)


def with_rows(loaded: LoadedSet, rows: list[dict], name: str | None = None) -> LoadedSet:
    """The same set with other rows (and, given, another name)."""
    return replace(loaded, rows=rows, name=name or loaded.name)


def data_sources(config, loaded: list[LoadedSet]) -> tuple[dict[str, LoadedSet], dict[str, str]]:
    """The related data and the unrelated general text the relearning attack trains on:
    (name -> trained view of the set, name -> why an attack data is missing)."""
    trained = {s.spec.name: s for s in loaded if s.view == TRAINED}
    sources, missing = {}, {}
    related = next((trained[r] for r in RELATED_ROLES if r in config.data and r in trained), None)
    related = related or next((s for s in trained.values() if s.role in RELATED_ROLES), None)
    if related is not None:
        sources["related"] = related
    else:
        missing["related"] = "the project has no retain or normal data (related data without the forget facts)"
    general = trained.get(GENERAL_ROLE) if GENERAL_ROLE in config.data else None
    general = general or next((s for s in trained.values() if s.role == GENERAL_ROLE), None)
    if general is not None:
        sources["general"] = general
    else:
        missing["general"] = "the project has no general text (a data role or an evaluation set of role general)"
    return sources, missing
