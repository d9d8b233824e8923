"""What an audit can take from an earlier audit of the same project: the original's and the
reference's measurements.

The original model (the base, the run's adapter off) and the reference model do not depend on the
run: their relearning curves and their answers under each prompt attack are the same for every run
of a project, given the same model files, rows and settings. Auditing several runs of one project
(to compare methods, say) therefore measures them once; each later audit measures its unlearned
model only. An entry is keyed by a digest of everything the numbers depend on (the model's files
and load settings, the rows, the attack data's tokens, the audit's settings, the code's version
below), so it is reused only when the same work would be done again; it is a cache, and deleting
it only costs time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from unlearn_studio.core.cache import cache_root, content_digest
from unlearn_studio.core.evaluation.result import MetricValue
from unlearn_studio.core.results.audit.models import ORIGINAL, REFERENCE
from unlearn_studio.core.results.audit.settings import AuditSettings

VERSION = 1  # bump when the way the audit measures or fine-tunes changes
Measured = dict[str, MetricValue]


def audit_cache_dir() -> Path:
    return cache_root() / "audit"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Reuse:
    """Measurements of the original and reference models, kept in ``folder`` across audits."""

    def __init__(self, folder: Path | None, identities: dict[str, str], settings: AuditSettings):
        """``identities``: model name -> a digest of that model (only the models that do not depend
        on the run); ``folder`` None keeps nothing."""
        self.folder, self.identities = folder, identities
        self.settings = {k: v for k, v in settings.to_dict().items() if k != "attacks"}
        self.reused = 0  # entries taken from earlier audits, for the log and the tests

    @classmethod
    def for_audit(cls, config, reference_dir: str | Path | None, settings: AuditSettings,
                  folder: Path | None) -> Reuse:
        # The harm judge decides what an answer states, for a harmful target.
        loading = {"model": dataclasses.asdict(config.model), "torch": torch.__version__,
                   "judge": config.evaluation.harm_judge}
        identities = {ORIGINAL: _digest({"files": content_digest(config.resolve_model_path()), **loading})}
        if reference_dir is not None:
            identities[REFERENCE] = _digest({"files": content_digest(reference_dir), **loading})
        return cls(folder, identities, settings)

    def key(self, model_name: str, *what: Any) -> str | None:
        """The entry of ``model_name`` measured on ``what`` (rows, data, a label), or None when that
        model's numbers depend on the run (the unlearned model) or nothing is kept."""
        if self.folder is None or model_name not in self.identities:
            return None
        return _digest([VERSION, self.identities[model_name], self.settings, list(what)])

    def get(self, key: str | None) -> list[Measured] | None:
        if key is None:
            return None
        try:
            stored = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
            measured = [{name: MetricValue.from_dict(value["key"], value) for name, value in point.items()}
                        for point in stored["measured"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: measured again and written anew
        self.reused += 1
        return measured

    def put(self, key: str | None, measured: list[Measured]) -> None:
        """Keep ``measured`` (written atomically; a cache that cannot be written only costs time)."""
        if key is None:
            return
        document = {"measured": [{name: {**value.to_dict(), "key": value.key} for name, value in point.items()}
                                 for point in measured]}
        path = self.folder / f"{key}.json"
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(document), encoding="utf-8")
            partial.replace(path)
        except OSError:
            partial.unlink(missing_ok=True)


def rows_digest(loaded) -> str:
    """What a measurement of a set depends on: its rows, kind, role, template and name."""
    return _digest({"rows": loaded.rows, "kind": loaded.kind, "role": loaded.role,
                    "template": getattr(loaded.spec, "template", None), "name": loaded.name})
