"""What an evaluation returns and writes: every metric with its per-item values, per-item
observations of every set, the reference model's numbers, and what could not be measured and why.

``EvalResult.aggregates`` is the flat {"<set>/<metric>": number} the project store keeps;
``payload()`` is the JSON written to ``eval_items.json`` and read back by ``load_result``, so that
a run's before/after judgement can be made again from its files alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.aggregates import aggregate

ITEMS_FILE = "eval_items.json"
FORMAT = 3  # the payload's layout; older files (no "metrics") cannot be judged again


@dataclass
class MetricValue:
    """One measured metric: its number, and the per-item values it was made from.

    ``groups`` hold per-item values aligned with the items of the set named in ``units`` (groups
    of one set are resampled together); ``params`` are constants of the aggregate (e.g. the
    reference model's AUC for PrivLeak)."""

    key: str
    metric: str  # the registered metric's name
    scope: str  # the set it describes ("" for the suite as a whole)
    value: float
    aggregate: str
    groups: dict[str, list[float]]
    units: dict[str, str]
    params: dict[str, float] = field(default_factory=dict)

    @classmethod
    def measured(cls, key: str, metric: str, scope: str, aggregate_name: str, groups: dict[str, list[float]],
                 units: dict[str, str], params: dict[str, float] | None = None) -> MetricValue:
        params = dict(params or {})
        return cls(key, metric, scope, aggregate(aggregate_name, groups, params), aggregate_name,
                   {g: [float(v) for v in values] for g, values in groups.items()}, units, params)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "scope": self.scope, "value": _json_number(self.value),
                "aggregate": self.aggregate, "groups": {g: [_json_number(v) for v in values]
                                                        for g, values in self.groups.items()},
                "units": self.units, "params": self.params}

    @classmethod
    def from_dict(cls, key: str, data: dict) -> MetricValue:
        return cls(key, data["metric"], data["scope"], _number(data["value"]), data["aggregate"],
                   {g: [_number(v) for v in values] for g, values in data["groups"].items()},
                   dict(data["units"]), dict(data.get("params") or {}))


def _json_number(value: float):
    """JSON has no NaN or infinity: they are written as strings and read back."""
    return value if math.isfinite(value) else str(value)


def _number(value) -> float:
    return float(value)


@dataclass
class SetInfo:
    """A measured set: how it is judged, what it holds, and its items' ids (for pairing)."""

    role: str
    kind: str
    view: str
    ids: list[str]
    source: str = ""  # the set the view belongs to ("forget" for "forget.paraphrase")

    def to_dict(self) -> dict:
        return {"role": self.role, "kind": self.kind, "view": self.view, "ids": self.ids, "source": self.source}


@dataclass
class EvalResult:
    """The result of evaluating one model on a suite (see the module docstring)."""

    suite: str
    tier: str
    metrics: dict[str, MetricValue]
    sets: dict[str, SetInfo]
    items: dict[str, list[dict]]
    skipped: dict[str, str] = field(default_factory=dict)  # metric key -> why it was not measured
    reference: dict[str, MetricValue] = field(default_factory=dict)  # the reference model's metrics
    reference_sets: dict[str, SetInfo] = field(default_factory=dict)
    settings: dict[str, float | str | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    collapse_checked: bool = False  # compared with a "before" result for collapse signs
    seconds: float = 0.0
    items_path: Path | None = None
    from_cache: bool = False

    @property
    def aggregates(self) -> dict[str, float]:
        """{key: number} of every measured metric, plus the summary keys of ``headline_aliases``."""
        values = {key: metric.value for key, metric in self.metrics.items()}
        values.update(headline_aliases(self))
        if self.collapse_checked:
            values["fluency/collapse"] = float(bool(self.warnings))
        return values

    def payload(self) -> dict:
        return {
            "format": FORMAT, "suite": self.suite, "tier": self.tier, "seconds": self.seconds,
            "settings": self.settings, "warnings": self.warnings, "collapse_checked": self.collapse_checked,
            "skipped": self.skipped,
            "sets": {name: info.to_dict() for name, info in self.sets.items()},
            "metrics": {key: metric.to_dict() for key, metric in self.metrics.items()},
            "reference": {key: metric.to_dict() for key, metric in self.reference.items()},
            "reference_sets": {name: info.to_dict() for name, info in self.reference_sets.items()},
            "aggregates": {key: _json_number(value) for key, value in self.aggregates.items()},
            "items": {name: [_json_safe(item) for item in items] for name, items in self.items.items()},
        }

    def write(self, path: Path) -> Path:
        write_json(path, self.payload())
        self.items_path = path
        return path


def _json_safe(item: dict) -> dict:
    return {k: (str(v) if k == "_origin" else _json_number(v) if isinstance(v, float) else v)
            for k, v in item.items()}


def headline_aliases(result: EvalResult) -> dict[str, float]:
    """Suite-level summary keys that sweeps and the frontier plot read: "forget_quality" and
    "forget_quality_log10" of the headline forget set (its paraphrase view where it has one)."""
    candidates = [m for m in result.metrics.values() if m.metric == "forget_quality"]
    if not candidates:
        return {}
    chosen = next((m for m in candidates if result.sets.get(m.scope, None) and result.sets[m.scope].view != "trained"),
                  candidates[0])
    return {"forget_quality_log10": chosen.value,
            "forget_quality": math.nan if math.isnan(chosen.value) else 10 ** chosen.value}


def write_json(path: Path, payload) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    partial.replace(path)


def _set_infos(data: dict) -> dict[str, SetInfo]:
    return {name: SetInfo(info["role"], info["kind"], info["view"], list(info["ids"]), info.get("source", ""))
            for name, info in data.items()}


def result_from_payload(payload: dict, path: Path | None = None, *, from_cache: bool = False) -> EvalResult:
    """An EvalResult from its JSON payload; UserError for a file of an older layout."""
    if payload.get("format") != FORMAT:
        raise UserError(f"{path or 'The evaluation file'} was written by an older version of the evaluation.",
                        "Evaluate the run again to get per-item results that can be judged.")
    return EvalResult(
        payload["suite"], payload["tier"],
        {key: MetricValue.from_dict(key, data) for key, data in payload["metrics"].items()},
        _set_infos(payload["sets"]), payload["items"], dict(payload["skipped"]),
        {key: MetricValue.from_dict(key, data) for key, data in payload["reference"].items()},
        _set_infos(payload["reference_sets"]), dict(payload["settings"]), list(payload["warnings"]),
        bool(payload["collapse_checked"]), float(payload["seconds"]), path, from_cache)


def load_result(path: str | Path) -> EvalResult:
    """Read an ``eval_items.json`` back (UserError when it is missing, damaged or too old)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"The evaluation file {path} cannot be read: {exc}",
                        "Evaluate the run again.") from None
    return result_from_payload(payload, path)
