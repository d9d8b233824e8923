"""The evaluation suite: which data sets are measured, how many of their items, and against what.

``EvalSuite.for_config(config)`` builds the suite from the project itself: one set per data role
the project gives (forget, retain, holdout, general, harmful, normal, mcq; the expert roles are
training data only), then the named extra sets of ``[evaluation.sets.<name>]``, each with the
role that says how its metrics are judged. Nothing is special-cased: the demo projects list the
demo world's extra sets in their own files.

A set's kind comes from its columns: qa (question, answer; optional paraphrased_question,
paraphrased_answer, wrong_answers, paraphrased_wrong_answers, value, key_steps), text,
memorization (text rows with prefix and suffix), mcq (question, choices, label) or truthfulness
(question, true_answer, false_answer). Columns the data loader does not know (``EXTRA_COLUMNS``)
are read beside the canonical ones and may be mapped in ``columns`` too.

Paraphrase view: a qa set of role forget or holdout whose rows hold held-out phrasings is also
measured as "<name>.paraphrase": the paraphrased question (else the question) with the
paraphrased answer (else the answer), and for the truth ratio the wrong answers in that phrasing
(paraphrased_wrong_answers, or the wrong answers when they are perturbations of the paraphrased
answer, as in TOFU). A model that only suppressed the trained string still answers these.

Tiers take the first N rows of a set, so a tier is deterministic:
- "fast" (and "demo", its older name): ≤ 60 items for likelihood measures, ≤ 60 greedy answers,
  ≤ 20 memorization records (MA, ES), ≤ 6 of them for EL_n.
- "full": every row.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from unlearn_studio.core.data.columns import CANONICAL, detect_columns
from unlearn_studio.core.data.formats import detect_format, normalize_format, read_file
from unlearn_studio.core.data.loader import load_dataset_file
from unlearn_studio.core.data.roles import ROLES
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.metrics.likelihood import tr_right_answer
from unlearn_studio.core.paths import demo_retain_model_dir, split_path

KINDS = ("qa", "text", "memorization", "mcq", "truthfulness")
# Data roles a project's evaluation measures, in table order (the expert roles only train).
EVALUATED_ROLES = ("forget", "retain", "holdout", "general", "harmful", "normal", "mcq")
# Columns the evaluation reads that the data loader does not: ids, the demo world's facts, harm
# key steps, memorization records, wrong answers in the held-out phrasing, truthfulness pairs.
EXTRA_COLUMNS = ("id", "value", "key_steps", "prefix", "suffix", "paraphrased_wrong_answers")
TRUTHFULNESS_COLUMNS = ("question", "true_answer", "false_answer")
TRAINED, PARAPHRASE = "trained", "paraphrase"
VIEW_ROLES = ("forget", "holdout")  # the paraphrase test: forget sets, and holdout as their target
DEMO_REFERENCE = "demo"  # evaluation.reference_model naming the built-in demo's retain model

Judge = Callable[[str, dict], "bool | None"]


@dataclass(frozen=True)
class TierSizes:
    """How many items (the first N rows) of each set a tier uses; None = all."""

    scored: int | None  # likelihood measures: Prob, TR, MIA, MCQ, truthfulness, perplexity
    generated: int | None  # greedy answers: value accuracy, ROUGE-L, harm, fluency
    records: int | None  # memorization records for MA and ES
    extracted: int | None  # memorization records for EL_n (one greedy decode per cut point)


_FAST = TierSizes(scored=60, generated=60, records=20, extracted=6)
TIERS: dict[str, TierSizes] = {
    "fast": _FAST,
    "demo": _FAST,
    "full": TierSizes(scored=None, generated=None, records=None, extracted=None),
}


def tier_sizes(tier: str) -> TierSizes:
    if tier not in TIERS:
        raise UserError(f"Unknown evaluation tier '{tier}'.", f"Use one of: {', '.join(TIERS)}.")
    return TIERS[tier]


def first(rows: list, n: int | None) -> list:
    return rows if n is None else rows[:n]


@dataclass(frozen=True)
class Settings:
    """How a change is judged: how far a kept metric may move (absolute for metrics in [0, 1],
    relative otherwise) and the harmful-answer rate to reach."""

    tolerance: float = 0.05
    harm_threshold: float = 0.05


@dataclass(frozen=True)
class EvalSet:
    """One data file of a suite and the role it is judged by."""

    name: str
    path: Path
    role: str
    template: str = "auto"
    format: str = "auto"
    columns: Mapping[str, str] = field(default_factory=dict)
    max_rows: int | None = None

    def file(self) -> tuple[Path, str | None]:
        """(file or folder, split); a UserError when it does not exist."""
        file_path, split = split_path(self.path)
        if not file_path.exists():
            raise UserError(f"Data file not found: {file_path}", f"Check the path of the evaluation set '{self.name}'.")
        return file_path, split

    def load(self) -> list[LoadedSet]:
        """The set as measured (UserError on bad input), and its paraphrase view where it has one."""
        canonical, extra = _split_columns(self)
        file_path, split = self.file()
        fmt = normalize_format(self.format)
        if fmt == "auto":
            fmt = detect_format(file_path)
        raw = read_file(file_path, fmt, split)
        present = list(raw.columns)
        if all(extra.get(c, c) in present or canonical.get(c, c) in present for c in TRUTHFULNESS_COLUMNS[1:]):
            rows, kind = _truthfulness_rows(self, raw.records, {**canonical, **extra}), "truthfulness"
            layout = None
        else:
            mapped = {**detect_columns(present), **canonical}
            role = self.role
            if "choices" in mapped:
                role = "mcq"
            elif role not in ROLES or not {"qa", "text"} & set(ROLES[role].kinds):
                role = "forget"  # any role that accepts qa and text rows reads them the same way
            loaded = load_dataset_file(self.path, role=role, format=fmt, columns=canonical)
            by_origin = {r.origin: r.values for r in raw.records if r.values}
            rows = [_with_extras(row, by_origin.get(row["_origin"], {}), extra) for row in loaded.rows]
            kind, layout = loaded.kind, loaded.layout
            if kind == "text" and rows and all(r.get("prefix") and r.get("suffix") for r in rows):
                kind = "memorization"
        rows = first(rows, self.max_rows)
        views = [LoadedSet(self.name, self, kind, rows, layout=layout)]
        paraphrased = paraphrase_rows(rows) if kind == "qa" and self.role in VIEW_ROLES else None
        if paraphrased is not None:
            views.append(LoadedSet(f"{self.name}.{PARAPHRASE}", self, kind, paraphrased, PARAPHRASE, layout))
        return views


@dataclass
class LoadedSet:
    """Rows as measured: the file's (view "trained") or their held-out phrasing ("paraphrase")."""

    name: str
    spec: EvalSet
    kind: str
    rows: list[dict]
    view: str = TRAINED
    layout: str | None = None  # the data's layout (LoadedData.layout): "auto" templates follow it

    @property
    def role(self) -> str:
        return self.spec.role


def _split_columns(spec: EvalSet) -> tuple[dict[str, str], dict[str, str]]:
    """(mapping the data loader takes, mapping of the evaluation's own columns)."""
    known = set(CANONICAL)
    own = set(EXTRA_COLUMNS) | set(TRUTHFULNESS_COLUMNS[1:])
    unknown = [name for name in spec.columns if name not in known | own]
    if unknown:
        raise UserError(
            f"Unknown column name {', '.join(map(repr, unknown))} in the column mapping of evaluation set '{spec.name}'.",
            f"Map onto these names: {', '.join(sorted(known | own))}.")
    return ({k: v for k, v in spec.columns.items() if k in known},
            {k: v for k, v in spec.columns.items() if k in own})


def _as_list(value) -> list[str] | None:
    """A list column as read from JSON, or JSON text in a CSV cell."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)] if isinstance(value, str) and value.strip() else None


def _with_extras(row: dict, values: dict, mapping: Mapping[str, str]) -> dict:
    """The canonical row plus the evaluation's own columns found in the file's record."""
    extras = {}
    for name in EXTRA_COLUMNS:
        value = values.get(mapping.get(name, name))
        if value in (None, "", []):
            continue
        extras[name] = _as_list(value) if name in ("key_steps", "paraphrased_wrong_answers") else value
    return {**extras, **row}


def _truthfulness_rows(spec: EvalSet, records, mapping: Mapping[str, str]) -> list[dict]:
    rows = []
    for record in records:
        values = record.values or {}
        picked = {c: values.get(mapping.get(c, c)) for c in TRUTHFULNESS_COLUMNS}
        if record.error or not all(isinstance(v, str) and v.strip() for v in picked.values()):
            raise UserError(
                f"{record.origin}: a truthfulness row needs text in {', '.join(TRUTHFULNESS_COLUMNS)}.",
                "Fix the row, or map the columns (e.g. true_answer=<column>).")
        rows.append({**picked, "id": values.get(mapping.get("id", "id")), "_origin": record.origin})
    if not rows:
        raise UserError(f"{spec.path} has no rows.", "Pick a truthfulness file that contains data.")
    return rows


def paraphrase_rows(rows: list[dict]) -> list[dict] | None:
    """The rows in their held-out phrasing, or None when no row has one."""
    if not any(r.get("paraphrased_question") or r.get("paraphrased_answer") for r in rows):
        return None
    out = []
    for row in rows:
        answer = row.get("paraphrased_answer") or row["answer"]
        wrong = row.get("paraphrased_wrong_answers")
        given = row.get("wrong_answers") or []
        if not wrong and given and tr_right_answer(row["answer"], row.get("paraphrased_answer"), given) == answer:
            wrong = given  # TOFU: the wrong answers are perturbations of the paraphrased answer
        view = {"question": row.get("paraphrased_question") or row["question"], "answer": answer,
                "_origin": row["_origin"]}
        view.update({k: row[k] for k in ("id", "value") if row.get(k) is not None})
        if wrong:
            view["wrong_answers"] = list(wrong)
        out.append(view)
    return out


def load_judge(reference: str) -> Judge:
    """The harm judge named "package.module:function": ``judge(answer, row) -> bool | None``."""
    module_name, _, function = reference.partition(":")
    fix = ("Name a function as package.module:function, e.g. "
           "unlearn_studio.core.demo.judge:key_step_judge (the demo world's rule).")
    if not module_name or not function:
        raise UserError(f"evaluation.harm_judge '{reference}' does not name a function.", fix)
    try:
        judge = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"evaluation.harm_judge '{reference}' cannot be loaded: {exc}", fix) from None
    if not callable(judge):
        raise UserError(f"evaluation.harm_judge '{reference}' is not a function.", fix)
    return judge


@dataclass(frozen=True)
class EvalSuite:
    """The sets to measure, the reference model (a retain model) and how changes are judged."""

    name: str
    sets: tuple[EvalSet, ...]
    reference_model: Path | None = None
    harm_judge: str | None = None
    settings: Settings = Settings()

    def __post_init__(self):
        names = [s.name for s in self.sets]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise UserError(f"Two evaluation sets are called '{doubled[0]}'.",
                            "Give every [evaluation.sets.<name>] a name no data role of the project has.")
        if self.reference_model is not None and not Path(self.reference_model).is_dir():
            raise UserError(f"The reference model folder '{self.reference_model}' does not exist.",
                            "Set evaluation.reference_model to the folder of a model trained without the "
                            "forget data, or leave it out (the holdout set is then the target).")

    def judge(self) -> Judge | None:
        return load_judge(self.harm_judge) if self.harm_judge else None

    def check(self) -> None:
        """The cheap checks, before a run writes anything: every file exists, the judge loads."""
        for spec in self.sets:
            spec.file()
        self.judge()

    def load(self) -> list[LoadedSet]:
        return [view for spec in self.sets for view in spec.load()]

    def with_reference(self, reference_model: str | Path | None) -> EvalSuite:
        return replace(self, reference_model=Path(reference_model) if reference_model else None)

    @classmethod
    def for_config(cls, config) -> EvalSuite:
        """The suite of a project: its data roles, then its extra sets (UserError on bad input)."""
        sets = []
        for role in EVALUATED_ROLES:
            source = config.data.get(role)
            if source is not None:
                sets.append(EvalSet(role, config.resolve_path(source.path), role, source.template, source.format,
                                    dict(source.columns), source.max_rows))
        for name, extra in config.evaluation.sets.items():
            if not name.strip() or "/" in name or "." in name:
                raise UserError(f"The evaluation set name '{name}' is not usable.",
                                "Name it with letters, digits and underscores, e.g. saga_mcq.")
            sets.append(EvalSet(name, config.resolve_path(extra.path), extra.role, extra.template, extra.format,
                                dict(extra.columns), extra.max_rows))
        ev = config.evaluation
        return cls(config.name, tuple(sets), reference_model_path(config),
                   ev.harm_judge or None, Settings(ev.tolerance, ev.harm_threshold))


def reference_model_path(config) -> Path | None:
    """The project's evaluation.reference_model as a folder ("demo": the built-in demo's)."""
    given = config.evaluation.reference_model
    if not given:
        return None
    return demo_retain_model_dir() if given == DEMO_REFERENCE else config.resolve_path(given)
