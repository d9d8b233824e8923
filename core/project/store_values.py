"""How values go into the project store's tables: timestamps, package versions, metric values
(NaN and the infinities kept apart from a missing value) and file digests."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# NaN and the infinities are kept apart from a missing value (NULL): value is NULL and special
# says which one it was.
SPECIAL_TO_FLOAT = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def encode_metric(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    v = float(value)
    if math.isnan(v):
        return None, "nan"
    if math.isinf(v):
        return None, "inf" if v > 0 else "-inf"
    return v, None


def decode_metric(value: float | None, special: str | None) -> float | None:
    if special is not None:
        return SPECIAL_TO_FLOAT[special]
    return value


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file; for a folder, of its files (relative names included)."""
    if path.is_dir():
        outer = hashlib.sha256()
        total = 0
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            digest, size = file_digest(f)
            outer.update(f"{f.relative_to(path).as_posix()}\0{digest}\n".encode())
            total += size
        return outer.hexdigest(), total
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
