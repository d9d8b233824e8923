"""The prompt attacks run: every attack prompts.py builds (and sampling) on each model, the target's
headline metric under each, and the recovery ratio per attack (core/results/audit/recovery.py).

The worst attack is the one that brings the unlearned model furthest back toward the original
(the highest recovery ratio; without ratios, the highest value of the unlearned model).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from unlearn_studio.core.evaluation.result import MetricValue
from unlearn_studio.core.evaluation.suite import Judge, LoadedSet
from unlearn_studio.core.results.audit import prompts
from unlearn_studio.core.results.audit.measuring import AuditMeter, lean
from unlearn_studio.core.results.audit.models import UNLEARNED, AuditModels
from unlearn_studio.core.results.audit.recovery import Recovery, between_models
from unlearn_studio.core.results.audit.reuse import Reuse, rows_digest
from unlearn_studio.core.results.audit.sampling import can_sample, sampled, sampling_units
from unlearn_studio.core.results.audit.settings import PROMPTS, AuditSettings
from unlearn_studio.core.results.audit.targets import Target

SAMPLING = "sampling"
BASELINE = "as_evaluated"  # the target as the evaluation asks it: the bar every attack is compared with


@dataclass
class AttackResult:
    name: str
    label: str
    values: dict[str, MetricValue]  # model -> the headline metric under the attack
    recovery: Recovery

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "recovery": self.recovery.to_dict(),
                "values": {model: value.to_dict() for model, value in self.values.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> AttackResult:
        values = {model: MetricValue.from_dict(value["metric"], value) for model, value in data["values"].items()}
        return cls(data["name"], data["label"], values, Recovery.from_dict(data["recovery"]))

    def value(self, model: str) -> float:
        return self.values[model].value if model in self.values else math.nan


@dataclass
class PromptsResult:
    metric: str
    attacks: list[AttackResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # attack -> why the target cannot take it
    seconds: float = 0.0

    @property
    def worst(self) -> AttackResult | None:
        """The attack that brings the unlearned model furthest back (None: no attack ran)."""
        if not self.attacks:
            return None
        with_ratio = [a for a in self.attacks if math.isfinite(a.recovery.ratio) and a.name != BASELINE]
        if with_ratio:
            return max(with_ratio, key=lambda a: a.recovery.ratio)
        return max(self.attacks, key=lambda a: a.value(UNLEARNED) if math.isfinite(a.value(UNLEARNED)) else -1)

    @property
    def baseline(self) -> AttackResult | None:
        return next((a for a in self.attacks if a.name == BASELINE), None)

    def to_dict(self) -> dict:
        worst = self.worst
        return {"metric": self.metric, "attacks": [a.to_dict() for a in self.attacks], "skipped": self.skipped,
                "worst": worst.name if worst is not None else None, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict) -> PromptsResult:
        return cls(data["metric"], [AttackResult.from_dict(a) for a in data["attacks"]], dict(data["skipped"]),
                   float(data["seconds"]))


class PromptAttacks:
    """The prompt attacks on one target, planned (``units``) before they run (``run``)."""

    def __init__(self, models: AuditModels, meter: AuditMeter, target: Target, settings: AuditSettings,
                 judge: Judge | None, reuse: Reuse | None = None):
        self.models, self.meter, self.target, self.settings, self.judge = models, meter, target, settings, judge
        self.reuse = reuse
        self.labels = prompts.attack_labels(target, models.tokenizer)
        self.sets: dict[str, LoadedSet] = {}
        self.skipped: dict[str, str] = {}
        for name in self.labels:
            if name == SAMPLING:
                reason = can_sample(target.loaded)
                if reason:
                    self.skipped[name] = reason
                continue
            built = prompts.build(target, name, models.tokenizer, settings.shots)
            if isinstance(built, str):
                self.skipped[name] = built
            else:
                self.sets[name] = lean(built)

    def units(self) -> int:
        attacks = [*self.sets, *([] if SAMPLING in self.skipped else [SAMPLING])]
        return sum(self._units(attack) for attack in attacks) * len(self.models.names)

    def run(self, floor: MetricValue | float | None) -> PromptsResult:
        started = time.monotonic()
        metric = self.target.metric
        result = PromptsResult(metric, skipped=dict(self.skipped))
        for name, label in self.labels.items():
            if name in self.skipped:
                continue
            values = {model: self._measure(model, name, label) for model in self.models.names}
            values = {model: value for model, value in values.items() if value is not None}
            result.attacks.append(AttackResult(name, label, values, between_models(values, floor)))
        result.seconds = time.monotonic() - started
        return result

    def _measure(self, model_name: str, attack: str, label: str) -> MetricValue | None:
        """The target metric of ``model_name`` under ``attack``, from an earlier audit of the project
        where the model does not depend on the run."""
        attacked = self.target.loaded if attack == SAMPLING else self.sets[attack]
        key = (self.reuse.key(model_name, "prompts", attack, self.target.metric, rows_digest(attacked))
               if self.reuse is not None else None)
        kept = self.reuse.get(key) if key else None
        if kept:
            self.meter.skip(self._units(attack))
            return kept[0].get(self.target.metric)
        value = self._measure_now(model_name, attack, label)
        if key and value is not None:
            self.reuse.put(key, [{self.target.metric: value}])
        return value

    def _units(self, attack: str) -> int:
        if attack == SAMPLING:
            return sampling_units(self.target.loaded, self.settings.items, self.settings.samples)
        return self.meter.units(self.sets[attack])

    def _measure_now(self, model_name: str, attack: str, label: str) -> MetricValue | None:
        model = self.models.use(model_name)
        what = f"{model_name} model, {label}"
        if attack == SAMPLING:
            s = self.settings
            return sampled(model, self.meter, self.target.loaded, self.target.metric, samples=s.samples,
                           temperature=s.temperature, seed=s.seed, judge=self.judge, what=what)
        self.meter.stage = PROMPTS
        return self.meter.measure(model, self.sets[attack], what).get(self.target.metric)
