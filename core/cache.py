"""Caches the app keeps between runs (evaluation results, ELM's sampled continuations), and the
content digests that key them: a cache entry is reused only for the same files, byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import platformdirs

from unlearn_studio.core.paths import split_path

FULL_HASH_LIMIT = 64 << 20  # larger files are fingerprinted, not hashed whole (see _file_fingerprint)


def cache_root() -> Path:
    """The app's cache folder; each cache is a sub-folder of it."""
    return Path(platformdirs.user_cache_dir("unlearn-studio"))


def _file_fingerprint(path: Path) -> str:
    """SHA-256 of a file; for files over 64 MiB of its size and first and last MiB (hashing many
    GB of weights for every evaluation would cost more than the evaluation)."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= FULL_HASH_LIMIT:
            while chunk := handle.read(1 << 20):
                h.update(chunk)
        else:
            h.update(f"size={size}".encode())
            h.update(handle.read(1 << 20))
            handle.seek(size - (1 << 20))
            h.update(handle.read(1 << 20))
    return h.hexdigest()


def content_digest(path: str | Path) -> str:
    """A digest of a file, or of a folder's files (relative names included)."""
    path = Path(split_path(path)[0])
    if path.is_file():
        return _file_fingerprint(path)
    outer = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        outer.update(f"{f.relative_to(path).as_posix()}\0{_file_fingerprint(f)}\n".encode())
    return outer.hexdigest()
