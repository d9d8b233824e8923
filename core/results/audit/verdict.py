"""The audit's verdict in plain words: robust, partly, or shallow, with the numbers behind it.

Every attack gives a recovery ratio with its 95% interval (0: the level of the model that never
saw the forget data, 1: the original's). An attack brought the knowledge

- "back" when its ratio is at least ``BACK`` (half way to the original) and its interval is above 0;
- "partly back" when its interval is above 0 (significantly above the reference level) but short
  of that;
- "held" otherwise (not told apart from the reference level).

The verdict: "not forgotten" when the unlearned model already stands where the original does before
any attack (no relearning step, the target as evaluated): there is nothing for an attack to bring
back. Otherwise shallow when a prompt attack, or relearning within ``QUICK`` steps, brings it back
(the field's best-known failure: a few steps of fine-tuning, or other words, and it is there
again); robust when every attack held and no probe reads what the output no longer says; partly
otherwise (it comes back part of the way, only after longer relearning, stays readable inside, or
was only partly gone to begin with).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from unlearn_studio.core.results.audit.prompt_attacks import BASELINE
from unlearn_studio.core.results.audit.recovery import Recovery

BACK = 0.5
QUICK = 10
WITHOUT_INTERVAL_PARTLY = 0.2  # a ratio without an interval counts as partly back from here
ROBUST, PARTLY, SHALLOW, KEPT, UNJUDGED = "robust", "partly", "shallow", "not forgotten", "not judged"
STATE_WORDS = {"back": "back", "partly": "partly back", "held": "held", "unknown": "no ratio"}


def state(recovery: Recovery) -> str:
    """"back", "partly", "held" or "unknown" (see the module docstring)."""
    ratio, low = recovery.ratio, recovery.low
    if not math.isfinite(ratio):
        return "unknown"
    if not math.isfinite(low):
        return "back" if ratio >= BACK else ("partly" if ratio >= WITHOUT_INTERVAL_PARTLY else "held")
    if low > 0:
        return "back" if ratio >= BACK else "partly"
    return "held"


@dataclass(frozen=True)
class Evidence:
    family: str  # "baseline" (before any attack) | "relearn" | "prompts" | "probes"
    what: str  # e.g. "10 steps on a slice of the forget data"
    state: str
    ratio: float = math.nan
    low: float = math.nan
    high: float = math.nan
    steps: int | None = None  # relearning steps

    def text(self) -> str:
        if not math.isfinite(self.ratio):
            return f"{self.what}: {STATE_WORDS[self.state]}"
        interval = f" [{self.low:.2f}, {self.high:.2f}]" if math.isfinite(self.low) else ""
        return f"{self.what}: ratio {self.ratio:.2f}{interval}, {STATE_WORDS[self.state]}"


@dataclass
class Verdict:
    word: str
    paragraph: str
    evidence: list[Evidence] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"word": self.word, "paragraph": self.paragraph, "evidence": [asdict(e) for e in self.evidence]}

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        evidence = [Evidence(**{k: (math.nan if v is None and k in ("ratio", "low", "high") else v)
                                for k, v in e.items()}) for e in data["evidence"]]
        return cls(data["word"], data["paragraph"], evidence)


def _evidence(relearn, prompts, probes) -> list[Evidence]:
    found = []
    if relearn is not None:
        for data, ratios in relearn.ratios.items():
            words = relearn.data[data]["words"]
            for steps, rec in zip(relearn.steps, ratios, strict=True):
                family = "relearn" if steps else "baseline"
                found.append(Evidence(family, f"{steps} steps on {words}" if steps else "before relearning",
                                      state(rec), rec.ratio, rec.low, rec.high, steps))
                if not steps:
                    break  # the three attack data start from the same models: one baseline
    if prompts is not None:
        for attack in prompts.attacks:
            rec = attack.recovery
            family = "baseline" if attack.name == BASELINE else "prompts"
            found.append(Evidence(family, attack.label, state(rec), rec.ratio, rec.low, rec.high))
    if probes is not None and probes.flagged:
        found.append(Evidence("probes", "hidden-state probes", "partly"))
    return found


def _word(evidence: list[Evidence]) -> str:
    known = [e for e in evidence if e.state != "unknown"]
    if not known:
        return UNJUDGED
    if any(e.family == "baseline" and e.state == "back" for e in known):
        return KEPT
    attacks = [e for e in known if e.family != "baseline"]
    if any(e.state == "back" and (e.family == "prompts" or (e.steps or 0) <= QUICK) for e in attacks):
        return SHALLOW
    return ROBUST if all(e.state == "held" for e in known) else PARTLY


OPENINGS = {
    ROBUST: "Robust: the forgotten knowledge did not come back under any attack; the unlearned model stayed at "
            "the level of a model that never saw the forget data.",
    PARTLY: "Partly: the forgotten knowledge came part of the way back under some attacks.",
    SHALLOW: "Shallow: the forgotten knowledge came back; the unlearning hid it rather than removed it.",
    KEPT: "Not forgotten: before any attack the unlearned model already answers as the original does, so there "
          "was nothing for the attacks to bring back.",
    UNJUDGED: "Not judged: no attack gave a recovery ratio (see why in each part).",
}


def judge_audit(target: dict, metric_label: str, relearn, prompts, probes, has_reference: bool) -> Verdict:
    """The verdict and its paragraph from the parts of an audit (any part may be None)."""
    evidence = _evidence(relearn, prompts, probes)
    word = _word(evidence)
    against = ("the reference model (never saw the forget data)" if has_reference
               else "the evaluation's target level (no reference model)")
    sentences = [OPENINGS[word],
                 (f"Measured: {metric_label} on '{target['set']}'; a recovery ratio of 0 is the level of {against}, "
                  "1 the original model's.")]
    worst = max((e for e in evidence if e.state != "unknown" and e.family in ("relearn", "prompts")),
                key=lambda e: e.ratio, default=None)
    baseline = next((e for e in evidence if e.family == "baseline" and e.state != "unknown"), None)
    if baseline is not None:
        sentences.append(f"Before any attack: {baseline.text()}.")
    if worst is not None:
        sentences.append(f"Strongest attack: {worst.text()}.")
    if relearn is not None:
        at = [k for k in (QUICK, relearn.steps[-1]) if k in relearn.steps]
        for data, ratios in relearn.ratios.items():
            by_step = dict(zip(relearn.steps, ratios, strict=True))
            parts = [f"{by_step[k].ratio:.2f} after {k} steps" for k in at if math.isfinite(by_step[k].ratio)]
            if parts:
                sentences.append(f"Relearning on {relearn.data[data]['words']}: {', '.join(parts)}.")
    if prompts is not None and prompts.worst is not None:
        attack = prompts.worst
        values = ", ".join(f"{model} {attack.value(model):.2f}" for model in attack.values)
        sentences.append(f"Worst prompt attack: {attack.label} ({values}).")
    if probes is not None:
        sentences.append(("Probes: the value is readable inside although the output no longer says it ("
                          if probes.flagged else "Probes: nothing flagged (") + probes.flag_reason + ").")
    return Verdict(word, " ".join(sentences), evidence)
