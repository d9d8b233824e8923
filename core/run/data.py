"""The data side of a run: load and tokenize every role, and draw deterministic batches.

Each role has its own stream: a permutation of its examples per epoch, drawn from a generator
seeded by (seed, role, epoch) alone, so the order never depends on the other roles, on the
process's global RNG, or on how the run was split into sessions. A stream's position (epoch,
index) is all that a checkpoint needs to continue it exactly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import torch

from unlearn_studio.core.data import (
    collate,
    load_dataset_file,
    pad_token_id_for,
    tokenize_rows,
)
from unlearn_studio.core.data.loader import LoadedData
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.base import Batch, UnlearningMethod
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.project.config import RunConfig


@dataclass
class RoleData:
    """One role's data: the loaded rows and, once a tokenizer is known, the tokenized examples."""

    role: str  # the role, or "role.name" for one of its further sources ([data.<role>.also.<name>])
    loaded: LoadedData
    examples: list[dict[str, list[int]]] = field(default_factory=list)
    template: str = ""
    truncated: list[str] = field(default_factory=list)  # truncation warnings
    weight: float = 1.0  # its share among its role's sources

    @property
    def n(self) -> int:
        return len(self.loaded.rows)


def load_roles(config: RunConfig, roles: list[str], method: UnlearningMethod | None = None) -> dict[str, RoleData]:
    """Read each role's file in strict mode (a bad row is a UserError), honouring max_rows; a role
    with further sources ([data.<role>.also.<name>]) gives one entry per source, keyed "role.name",
    and only a role the method takes several sources for may have them. ``method``: the method
    the run runs (default: the one the project names)."""
    method = method or get_method(config.method.name)
    several = method.roles.several
    out = {}
    for role in roles:
        sources = config.data[role].sources(role)
        if len(sources) > 1 and role not in several:
            title = method.title
            raise UserError(f"[data.{role}.also] lists further sources, but {title} reads one {role} data set",
                            f"Remove [data.{role}.also], or merge its files into data.{role}.path."
                            + (f" {title} takes several sources for: {', '.join(several)}." if several else ""))
        for key, source in sources.items():
            loaded = load_dataset_file(
                config.resolve_data_path(key) if key != role else config.resolve_path(source.path),
                role=role,
                format=source.format,
                columns=source.columns or None,
                strict=True,
            )
            if source.max_rows is not None and loaded.n_rows > source.max_rows:
                loaded.rows = loaded.rows[: source.max_rows]
                loaded.n_rows = len(loaded.rows)
            out[key] = RoleData(key, loaded, weight=source.weight if source.weight is not None else 1.0)
    return out


def tokenize_roles(config: RunConfig, data: dict[str, RoleData], tokenizer) -> None:
    """Tokenize every role (and further source) with its own template (resolved for its kind of rows)."""
    for role, item in data.items():
        item.template = item.loaded.template(config.data_source(role).template, tokenizer)
        item.examples, item.truncated = tokenize_rows(
            item.loaded.rows, item.template, tokenizer, config.training.max_length
        )


def role_seed(seed: int, role: str, epoch: int) -> int:
    """A stable seed per (seed, role, epoch); crc32 because Python's str hash changes per process."""
    return (seed * 1_000_003 + zlib.crc32(role.encode()) * 7_919 + epoch) % (2**63)


class RoleStream:
    """Endless batches of one role, one shuffled pass (epoch) after another.

    An epoch has ceil(n / batch_size) batches; the last one may be smaller. With several
    processes the stream draws ``batch_size × world`` examples per step and each process takes
    its share, so every process keeps the same position.
    """

    def __init__(self, role: str, examples: list[dict], batch_size: int, seed: int, pad_token_id: int,
                 rank: int = 0, world: int = 1):
        if not examples:
            raise ValueError(f"role {role} has no examples")
        self.role = role
        self.examples = examples
        self.batch_size = batch_size * world
        self.seed = seed
        self.pad_token_id = pad_token_id
        self.rank = rank
        self.world = world
        self.epoch = 0
        self.index = 0
        self._order: list[int] | None = None

    def _permutation(self) -> list[int]:
        if self._order is None:
            generator = torch.Generator().manual_seed(role_seed(self.seed, self.role, self.epoch))
            self._order = torch.randperm(len(self.examples), generator=generator).tolist()
        return self._order

    def next_indices(self) -> list[int]:
        """The example indices of the next global batch; advances the position."""
        order = self._permutation()
        chosen = order[self.index : self.index + self.batch_size]
        self.index += self.batch_size
        if self.index >= len(order):
            self.epoch, self.index, self._order = self.epoch + 1, 0, None
        return chosen

    def next_batch(self) -> Batch:
        chosen = self.next_indices()
        # A short last batch may have fewer rows than processes; a process then reuses one.
        mine = chosen[self.rank :: self.world] or [chosen[self.rank % len(chosen)]]
        tensors = collate([self.examples[i] for i in mine], self.pad_token_id)
        return Batch(tensors["input_ids"], tensors["attention_mask"], tensors["labels"],
                     {"index": torch.tensor(mine, dtype=torch.long)})

    @property
    def progress(self) -> float:
        """Epochs done, as a float."""
        return self.epoch + self.index / len(self.examples)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.index, self._order = int(state["epoch"]), int(state["index"]), None


def make_streams(data: dict[str, RoleData], batch_size: int, seed: int, tokenizer,
                 rank: int = 0, world: int = 1) -> dict[str, RoleStream]:
    pad = pad_token_id_for(tokenizer)
    return {role: RoleStream(role, item.examples, batch_size, seed, pad, rank, world) for role, item in data.items()}


def first_batches(data: dict[str, RoleData], batch_size: int, tokenizer, count: int = 4) -> dict[str, list[Batch]]:
    """A few batches of each role in file order, for ``method.prepare``; the streams are untouched."""
    pad = pad_token_id_for(tokenizer)
    out = {}
    for role, item in data.items():
        batches = []
        for start in range(0, min(len(item.examples), batch_size * count), batch_size):
            rows = range(start, min(start + batch_size, len(item.examples)))
            tensors = collate([item.examples[i] for i in rows], pad)
            batches.append(Batch(tensors["input_ids"], tensors["attention_mask"], tensors["labels"],
                                 {"index": torch.tensor(list(rows), dtype=torch.long)}))
        out[role] = batches
    return out


def steps_per_epoch(n_examples: int, batch_size: int, world: int = 1) -> int:
    return -(-n_examples // (batch_size * world))
