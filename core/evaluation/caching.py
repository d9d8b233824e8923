"""The evaluation's caches: the unmodified base model's results ("before") and the reference
model's, keyed by the content of every file that decides them.

- before: per (base model folder, suite: its sets' files, columns and templates, the reference
  model and the judge, tier). A run's "before" numbers come from here when the same model and
  data were evaluated earlier, which halves the evaluation of every run after the first.
- reference: per (reference model folder, the sets it is measured on, tier). The reference is
  measured once for all runs of a project, whatever model they train.
Both live under the app's cache folder (``cache_root()/eval``) unless a folder is given. A key
includes ``METRICS_VERSION``: bump it when a measurement changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from unlearn_studio.core.cache import cache_root, content_digest
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.result import EvalResult, result_from_payload, write_json
from unlearn_studio.core.evaluation.suite import EvalSet, EvalSuite

METRICS_VERSION = 3


def _key(parts: Mapping) -> str:
    text = json.dumps({"metrics_version": METRICS_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def set_fingerprint(spec: EvalSet) -> dict:
    return {"name": spec.name, "role": spec.role, "file": content_digest(spec.path), "template": spec.template,
            "format": spec.format, "columns": dict(spec.columns), "max_rows": spec.max_rows}


def cache_folder(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else cache_root() / "eval"


def before_path(model_dir: str | Path, suite: EvalSuite, tier: str, cache_dir: str | Path | None) -> Path:
    key = _key({
        "model": content_digest(model_dir),
        "sets": [set_fingerprint(s) for s in suite.sets],
        "reference_model": content_digest(suite.reference_model) if suite.reference_model else None,
        "judge": suite.harm_judge,
        "tier": tier,
    })
    return cache_folder(cache_dir) / "before" / f"{key}.json"


def reference_path(suite: EvalSuite, specs: list[EvalSet], tier: str, cache_dir: str | Path | None) -> Path:
    key = _key({"reference_model": content_digest(suite.reference_model),
                "sets": [set_fingerprint(s) for s in specs], "tier": tier})
    return cache_folder(cache_dir) / "reference" / f"{key}.json"


def read_cached(path: Path) -> EvalResult | None:
    """The cached result at ``path``; None when there is none or it is damaged (then recomputed)."""
    if not path.is_file():
        return None
    try:
        return result_from_payload(json.loads(path.read_text(encoding="utf-8")), path, from_cache=True)
    except (ValueError, KeyError, TypeError, UserError):
        return None


def write_cached(path: Path, result: EvalResult) -> None:
    write_json(path, result.payload())
