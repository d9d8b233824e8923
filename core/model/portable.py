"""Files that transformers 4.46+ and 5.x both read the same way: the tokenizer's and a saved model's
config.

transformers 5 writes ``tokenizer_class: "TokenizersBackend"`` (a class 4.x does not have), keeps
extra special tokens under ``extra_special_tokens`` (in 4.x that key means a mapping of named
tokens, and a list there fails to load), adds keys of its own (``backend``, ``is_local``,
``local_files_only``), and writes the chat template to chat_template.jinja only, which 4.46 does
not read. The saved tokenizer.json is the same for both; only tokenizer_config.json differs, so it
is rewritten the way 4.x expects and 5.x still reads: the generic fast class
``PreTrainedTokenizerFast``, ``additional_special_tokens``, and the chat template inside it.

A model's config.json from transformers 5 keeps the rotary embedding's settings only under
``rope_parameters``; 4.x does not read that key and silently uses its class defaults (rope_theta
10000 instead of a Llama 3's 500000, Phi's partial rotary factor 0.5 instead of the model's), so
its logits differ. The same values are written where 4.x reads them as well (measured: 4.46 and
4.57 then give 5.x's logits exactly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOKENIZER_CONFIG = "tokenizer_config.json"
MODEL_CONFIG = "config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# Classes transformers 5 writes that 4.x does not have, and what 4.x reads the same files with.
PORTABLE_CLASSES = {"TokenizersBackend": "PreTrainedTokenizerFast"}
V5_ONLY_KEYS = ("backend", "is_local", "local_files_only")


def save_portable_tokenizer(tokenizer: Any, folder: str | Path) -> list[str]:
    """``tokenizer.save_pretrained(folder)``, then tokenizer_config.json made portable; returns what
    was changed (for the export's report)."""
    folder = Path(folder)
    tokenizer.save_pretrained(str(folder))
    return make_tokenizer_portable(folder)


def make_tokenizer_portable(folder: str | Path) -> list[str]:
    """Rewrite tokenizer_config.json in ``folder`` for transformers 4.x and 5.x; returns the changes."""
    folder = Path(folder)
    path = folder / TOKENIZER_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    changes = []
    cls = config.get("tokenizer_class")
    if cls in PORTABLE_CLASSES:
        config["tokenizer_class"] = PORTABLE_CLASSES[cls]
        changes.append(f"tokenizer_class {cls} -> {PORTABLE_CLASSES[cls]}")
    extra = config.get("extra_special_tokens")
    if isinstance(extra, list):
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
        changes.append("extra_special_tokens -> additional_special_tokens")
    for key in V5_ONLY_KEYS:
        if key in config:
            del config[key]
            changes.append(f"{key} removed")
    template_file = folder / CHAT_TEMPLATE_FILE
    if template_file.is_file() and "chat_template" not in config:
        config["chat_template"] = template_file.read_text(encoding="utf-8")
        template_file.unlink()
        changes.append(f"chat template moved from {CHAT_TEMPLATE_FILE} into {TOKENIZER_CONFIG}")
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return changes


def make_model_config_portable(folder: str | Path) -> list[str]:
    """Write the rotary settings of config.json's ``rope_parameters`` where transformers 4.x reads
    them (top-level ``rope_theta`` and ``partial_rotary_factor``, gpt_neox's ``rotary_pct``, and
    ``rope_scaling`` for a scaled rope); returns the keys added."""
    path = Path(folder) / MODEL_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict):
        return []
    added = {}
    for key in ("rope_theta", "partial_rotary_factor"):
        if key in rope:
            added[key] = rope[key]
    if config.get("model_type") == "gpt_neox" and "partial_rotary_factor" in rope:
        added["rotary_pct"] = rope["partial_rotary_factor"]
    if rope.get("rope_type", "default") != "default":
        added["rope_scaling"] = {k: v for k, v in rope.items() if k not in ("rope_theta", "partial_rotary_factor")}
    added = {key: value for key, value in added.items() if key not in config}
    if added:
        config.update(added)
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return sorted(added)
