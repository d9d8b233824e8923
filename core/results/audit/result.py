"""An audit's result, and where it is kept: a JSON file in the run's folder
(``<run>/audits/<time>/audit.json``, a folder the app marks as its own) and a row of the project
store (an artifact of kind "audit" pointing to that file, with its SHA-256). Every audit is kept;
the newest is the one the app, the CLI and the exported model card show.

The file holds everything the app draws and the verdict is made from: each model's metric (with
its per-item values) at every step of every relearning attack and under every prompt attack, the
ratios and their intervals, the probes' accuracies and the logit lens per layer, what each part
cost in seconds, and why any part could not run. Numbers that are not finite are written as null.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.result import write_json
from unlearn_studio.core.files import write_dir_atomically
from unlearn_studio.core.results.audit.probes import ProbesResult
from unlearn_studio.core.results.audit.prompt_attacks import PromptsResult
from unlearn_studio.core.results.audit.relearn import RelearnResult
from unlearn_studio.core.results.audit.settings import AuditSettings
from unlearn_studio.core.results.audit.verdict import Verdict

FORMAT = 1
AUDITS_DIR = "audits"
AUDIT_FILE = "audit.json"
ARTIFACT = "audit"


def plain(value):
    """``value`` with every non-finite float as None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass
class AuditResult:
    run_id: str
    method: str
    project: str
    settings: AuditSettings
    target: dict  # the attacked set and metric (targets.Target.describe)
    models: dict[str, str]  # model name -> what it is
    level: dict | None = None  # without a reference model: the level the ratios compare with
    relearn: RelearnResult | None = None
    prompts: PromptsResult | None = None
    probes: ProbesResult | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # attack -> why it could not run
    verdict: Verdict | None = None
    seconds: float = 0.0
    run_seconds: float | None = None  # the run's own wall time (training and its evaluation), for scale
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    path: Path | None = None
    reused: int = 0  # measurements of the original and reference models taken from earlier audits

    def payload(self) -> dict:
        return plain({
            "format": FORMAT, "run_id": self.run_id, "method": self.method, "project": self.project,
            "created": self.created, "seconds": self.seconds, "run_seconds": self.run_seconds,
            "settings": self.settings.to_dict(), "target": self.target, "models": self.models, "level": self.level,
            "relearn": self.relearn.to_dict() if self.relearn else None,
            "prompts": self.prompts.to_dict() if self.prompts else None,
            "probes": self.probes.to_dict() if self.probes else None,
            "skipped": self.skipped, "verdict": self.verdict.to_dict() if self.verdict else None,
            "reused": self.reused,
        })

    def summary(self) -> dict:
        """The numbers a table of audits shows: the verdict, the relearning ratios after 10 steps and
        after the last, the worst prompt attack, the unlearned model's best probe, and the costs."""
        out = {"verdict": self.verdict.word if self.verdict else None, "metric": self.target.get("label"),
               "set": self.target.get("set"), "seconds": self.seconds, "run_seconds": self.run_seconds,
               "reused": self.reused}
        if self.relearn is not None:
            at = [k for k in (10, self.relearn.steps[-1]) if k in self.relearn.steps]
            out["relearn"] = {data: {str(k): dict(zip(self.relearn.steps, ratios, strict=True))[k].ratio for k in at}
                              for data, ratios in self.relearn.ratios.items()}
            out["relearn_seconds"] = self.relearn.seconds
        if self.prompts is not None and self.prompts.worst is not None:
            worst = self.prompts.worst
            out["worst_prompt"] = {"attack": worst.label, "ratio": worst.recovery.ratio,
                                   "values": {m: worst.value(m) for m in worst.values}}
            out["prompts_seconds"] = self.prompts.seconds
        if self.probes is not None:
            position, layer, accuracy = self.probes.best("unlearned")
            out["best_probe"] = {"layer": self.probes.layers[layer] if layer >= 0 else None, "position": position,
                                 "accuracy": accuracy, "chance": self.probes.chance.get(position),
                                 "flagged": self.probes.flagged}
            out["probes_seconds"] = self.probes.seconds
        return plain(out)

    @classmethod
    def from_payload(cls, data: dict, path: Path | None = None) -> AuditResult:
        if data.get("format") != FORMAT:
            raise UserError(f"{path or 'The audit file'} was written by another version of the audit.",
                            "Audit the run again.")

        def part(key, kind):
            return kind.from_dict(data[key]) if data.get(key) else None

        return cls(data["run_id"], data["method"], data["project"], AuditSettings.from_dict(data["settings"]),
                   data["target"], data["models"], data.get("level"), part("relearn", RelearnResult),
                   part("prompts", PromptsResult), part("probes", ProbesResult), dict(data["skipped"]),
                   part("verdict", Verdict), float(data["seconds"]), data.get("run_seconds"), data["created"], path,
                   int(data.get("reused", 0)))


def audit_folder(run_dir: Path, created: str) -> Path:
    """A new folder for an audit made at ``created`` (a time stamp), never an earlier audit's."""
    stamp = created.replace(":", "").replace("-", "").replace("+0000", "").replace("+00:00", "")
    folder = run_dir / AUDITS_DIR / stamp
    number = 1
    while folder.exists():
        number += 1
        folder = run_dir / AUDITS_DIR / f"{stamp}-{number}"
    return folder


def save(result: AuditResult, run_dir: Path, store=None) -> Path:
    """Write the audit into a new folder of the run's and record it in ``store`` (if given)."""
    folder = audit_folder(run_dir, result.created)
    write_dir_atomically(folder, lambda tmp: write_json(tmp / AUDIT_FILE, result.payload()), kind="audit",
                         what="audit")
    result.path = folder / AUDIT_FILE
    if store is not None:
        store.add_artifact(result.run_id, ARTIFACT, result.path)
    return result.path


def load(path: str | Path) -> AuditResult:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"The audit file {path} cannot be read: {exc}", "Audit the run again.") from None
    return AuditResult.from_payload(data, path)


def newest(paths) -> AuditResult | None:
    """The newest readable audit among ``paths`` (files that are gone or damaged are passed over)."""
    for path in sorted({p for p in paths if p.is_file()}, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return load(path)
        except UserError:
            continue
    return None


def in_folder(run_dir: str | Path | None) -> list[Path]:
    """The audit files in a run's folder."""
    return sorted((Path(run_dir) / AUDITS_DIR).glob(f"*/{AUDIT_FILE}")) if run_dir else []


def latest(store, run_id: str) -> AuditResult | None:
    """The run's newest audit that can still be read (recorded in the store, or found in its
    folder), or None."""
    recorded = [Path(a["path"]) for a in store.artifacts(run_id) if a["kind"] == ARTIFACT]
    return newest(recorded + in_folder(store.run(run_id).get("output_dir")))
