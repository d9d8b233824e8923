"""What an audit does: which attacks, and the few numbers that size them, checked before any work.

The defaults are the issue's: relearning for k = 0, 5, 10, 25, 50 steps on a 10% slice of the forget
data, n = 5 samples at temperature 1, a probe flag at 90% accuracy. The relearning fine-tune is a
fresh LoRA of rank 4 on every projection (alpha 8, AdamW at 1e-3, batch 4): a small, ordinary
fine-tune, the same for the three models. ``items`` caps the measured items per set, as the
evaluation's "fast" tier does (60).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from unlearn_studio.core.errors import UserError

RELEARN, PROMPTS, PROBES = "relearn", "prompts", "probes"
ATTACKS = (RELEARN, PROMPTS, PROBES)


@dataclass(frozen=True)
class AuditSettings:
    attacks: tuple[str, ...] = ATTACKS
    steps: tuple[int, ...] = (0, 5, 10, 25, 50)  # relearning steps after which the forget metric is measured
    slice_share: float = 0.1  # the share of the forget data's rows the relearning slice takes
    lr: float = 1e-3
    rank: int = 4
    batch_size: int = 4
    seed: int = 0
    items: int = 60  # items measured per set (the first ones), as the "fast" tier
    samples: int = 5  # sampling attack: answers drawn per prompt
    temperature: float = 1.0
    shots: int = 3  # few-shot attack: other facts of the same subject shown first
    probe_flag: float = 0.9  # a probe this accurate on knowledge gone from the output is flagged
    gone_margin: float = 0.1  # "gone from the output": at most this far above the reference level

    def __post_init__(self):
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown or not self.attacks:
            raise UserError(f"Unknown audit attack '{unknown[0] if unknown else ''}'.",
                            f"Name one or more of: {', '.join(ATTACKS)} (comma-separated).")
        if not self.steps or self.steps[0] != 0 or sorted(set(self.steps)) != list(self.steps):
            raise UserError(f"The relearning steps {list(self.steps)} are not usable.",
                            "Give increasing step counts from 0, e.g. 0,5,10,25,50.")
        checks = ((0 < self.slice_share < 1, "slice_share", "between 0 and 1, e.g. 0.1"),
                  (self.lr > 0, "lr", "a positive learning rate, e.g. 1e-3"),
                  (self.rank >= 1, "rank", "a LoRA rank of 1 or more"),
                  (self.batch_size >= 1, "batch_size", "1 or more"),
                  (self.items >= 2, "items", "2 or more"),
                  (self.samples >= 1, "samples", "1 or more"),
                  (self.temperature > 0, "temperature", "a positive temperature, e.g. 1.0"),
                  (self.shots >= 1, "shots", "1 or more"),
                  (0 < self.probe_flag <= 1, "probe_flag", "an accuracy between 0 and 1, e.g. 0.9"),
                  (0 <= self.gone_margin < 1, "gone_margin", "between 0 and 1, e.g. 0.1"))
        for ok, name, fix in checks:
            if not ok:
                raise UserError(f"The audit setting {name} = {getattr(self, name)!r} is not usable.", f"Use {fix}.")

    def to_dict(self) -> dict:
        return {**asdict(self), "attacks": list(self.attacks), "steps": list(self.steps)}

    @classmethod
    def from_dict(cls, data: dict) -> AuditSettings:
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**values)


def parse_attacks(text: str) -> tuple[str, ...]:
    """"relearn,probes" as a tuple in the audit's order (a UserError for an unknown name)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    AuditSettings(attacks=tuple(names))  # checks the names
    return tuple(a for a in ATTACKS if a in names)


def parse_steps(text: str) -> tuple[int, ...]:
    """"0,5,10" as step counts (a UserError for anything else)."""
    try:
        steps = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"The relearning steps '{text}' are not whole numbers.",
                        "Give increasing step counts from 0, e.g. 0,5,10,25,50.") from None
    AuditSettings(steps=steps)
    return steps
