"""Shared test set-up: the local model and tokenizer builders in tests/core are importable by name
(with --import-mode=importlib a test's siblings are not on sys.path)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "core"))
