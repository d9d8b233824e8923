"""What the app shows about one data role before a run: format, columns, bad rows, preview rows,
and the first batch as training sees it (tokenized, decoded back, the trained span marked «...»).
Reads only; a whole-file problem is reported in the result, not raised."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from unlearn_studio.core.data.templates import (
    IGNORE_INDEX,
    collate,
    mark_label_span,
    pad_token_id_for,
    resolve_template,
    tokenize_rows,
)
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.loading import load_tokenizer
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.summary import DatasetSummary, read_into

BATCH_ROWS = 4


@dataclass
class DecodedExample:
    origin: str
    text: str  # decoded, trained tokens inside «...»
    n_tokens: int
    n_trained: int


@dataclass
class RolePreview(DatasetSummary):
    """The role's summary and its first batch as training sees it."""

    template: str = ""
    batch: list[DecodedExample] = field(default_factory=list)
    batch_note: str = ""  # why there is no decoded batch, or truncation warnings

    @property
    def valid(self) -> bool:
        """A run accepts the file: it reads, and no row is bad (runs load data strictly)."""
        return self.error is None and self.bad_rows == 0 and self.rows > 0


@functools.lru_cache(maxsize=4)
def _tokenizer(folder: str, trust_remote_code: bool, allow_network: bool):
    return load_tokenizer(folder, trust_remote_code=trust_remote_code, allow_network=allow_network)


def preview_role(config: RunConfig, role: str) -> RolePreview:
    result = RolePreview(role=role, path=config.data[role].path)
    loaded = read_into(result, config, role)
    if loaded is not None:
        _decode_first_batch(config, role, loaded.rows[:BATCH_ROWS], loaded.kind, result)
    return result


def _decode_first_batch(config: RunConfig, role: str, rows: list[dict], kind: str, result: RolePreview) -> None:
    if not rows:
        return
    try:
        tokenizer = _tokenizer(config.resolve_model_path(), config.model.trust_remote_code,
                               config.model.allow_network)
    except UserError as error:
        result.batch_note = f"No tokenized preview: the model's tokenizer cannot be read ({error.problem})."
        return
    try:
        template = resolve_template(config.data[role].template, kind, tokenizer)
        examples, warnings = tokenize_rows(rows, template, tokenizer, config.training.max_length)
    except UserError as error:
        result.batch_note = str(error)
        return
    result.template = template
    batch = collate(examples, pad_token_id_for(tokenizer))
    for row, ids, mask, labels in zip(rows, batch["input_ids"], batch["attention_mask"], batch["labels"]):
        n = int(mask.sum())
        result.batch.append(DecodedExample(
            str(row["_origin"]), mark_label_span(tokenizer, ids[:n].tolist(), labels[:n].tolist()), n,
            int((labels[:n] != IGNORE_INDEX).sum())))
    if warnings:
        result.batch_note = "; ".join(warnings)
