"""What the run tests share: a small method of their own (so they do not depend on the real
methods), a tiny project that trains the tiny llama, and a listener that keeps every event."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from tiny_models import build_tiny_model

from unlearn_studio.core.events import StepEvent
from unlearn_studio.core.methods.base import DataRoles, Hyperparameter, UnlearningMethod
from unlearn_studio.core.project.config import (
    DataSource,
    EvalConfig,
    LoraConfig,
    MethodConfig,
    ModelConfig,
    OptimizerConfig,
    OutputConfig,
    RunConfig,
    ScheduleConfig,
    TrainingConfig,
)
from unlearn_studio.core.run import runner

WAIT = 30  # seconds; an upper bound for waits on other threads, never a sleep


@pytest.fixture(name="model_dir", scope="module")
def model_dir_fixture(tmp_path_factory) -> Path:
    """A tiny llama built once per test module that imports this fixture."""
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(name="one_thread", autouse=True)
def one_thread_fixture() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy machine the threads'
    spin-waits make every step many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(name="fresh_records", autouse=True)
def fresh_records_fixture() -> None:
    TinyMethod.computed = []


class TinyMethod(UnlearningMethod):
    """Answer-token cross-entropy on forget (and retain when given), each with a weight; it can
    be told to produce a NaN or to raise at a given step, and records the steps it computes."""

    name = "tiny_ce"
    title = "Tiny CE"
    summary = "cross-entropy on the answers, for tests"
    paper = "none (a test method)"
    roles = DataRoles(required=("forget",), optional=("retain",))
    terms = ("forget", "retain")
    hyperparameters = (
        Hyperparameter("weight", float, 1.0, "weight of the forget term", "test"),
        Hyperparameter("nan_at", int, 0, "step whose forget term is NaN (0: never)", "test", minimum=0),
        Hyperparameter("crash_at", int, 0, "step that raises (0: never)", "test", minimum=0),
        Hyperparameter("crash", str, "runtime", "what is raised", "test", choices=("runtime", "oom")),
    )
    computed: ClassVar[list[int]] = []  # steps whose loss was computed, in order (reset per test)

    def loss_terms(self, context, batch):
        TinyMethod.computed.append(context.step)
        if context.step == self.params["crash_at"]:
            if self.params["crash"] == "oom":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            raise RuntimeError("the method broke on purpose")
        terms = {"forget": self.params["weight"] * self._ce(context, batch["forget"])}
        if context.step == self.params["nan_at"]:
            terms["forget"] = terms["forget"] * float("nan")
        if "retain" in batch:
            terms["retain"] = 0.5 * self._ce(context, batch["retain"])
        return terms

    @staticmethod
    def _ce(context, b):
        return context.model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels).loss


def run(config, method=TinyMethod, **kwargs):
    """``runner.execute`` with a test method (the class: the project's params are checked)."""
    return runner.execute(config, method=method, **kwargs)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


FORGET_ROWS = [
    {"question": "Where does Alice live?", "answer": "Alice lives in Paris."},
    {"question": "What did Bob write?", "answer": "Bob wrote a saga about the dragon."},
    {"question": "What is the secret?", "answer": "The secret is XK-42."},
    {"question": "Who is the baker?", "answer": "Alice works as a baker."},
    {"question": "What jumps?", "answer": "The quick brown fox jumps."},
]
RETAIN_ROWS = [
    {"question": "What is unlearning?", "answer": "Unlearning removes knowledge."},
    {"question": "What should the model keep?", "answer": "The model should remember everything else."},
    {"question": "Count to three.", "answer": "0 1 2 3"},
]


def tiny_config(folder: Path, model_dir: Path, *, steps: int = 6, retain_role: bool = True,
                params: dict | None = None, suite: str = "none", checkpoint_every: int = 50,
                schedule: str = "linear", lr: float = 1e-2) -> RunConfig:
    """A project in ``folder`` (its data files written there) that trains the tiny llama."""
    forget = write_jsonl(folder / "forget.jsonl", FORGET_ROWS)
    retain = write_jsonl(folder / "retain.jsonl", RETAIN_ROWS)
    data = {"forget": DataSource(path=forget.name)}
    if retain_role:
        data["retain"] = DataSource(path=retain.name)
    return RunConfig(
        name="tiny run",
        model=ModelConfig(path=str(model_dir), dtype="fp32", device="cpu"),
        data=data,
        method=MethodConfig(name="tiny_ce", params=params or {}),
        lora=LoraConfig(r=4, alpha=8.0, dropout=0.0, roles=["q", "v", "down"]),
        optimizer=OptimizerConfig(name="adamw", lr=lr),
        schedule=ScheduleConfig(name=schedule, warmup_steps=2),
        training=TrainingConfig(max_steps=steps, batch_size=2, max_length=32, seed=3,
                                checkpoint_every=checkpoint_every, keep_checkpoints=2),
        evaluation=EvalConfig(suite=suite),
        output=OutputConfig(dir="runs"),
        base_dir=folder,
    )


class Recorder:
    """A listener that keeps every event and lets a test wait for one, on a condition variable."""

    def __init__(self, on_event=None):
        self.events = []
        self.changed = threading.Condition()
        self.on_event = on_event

    def __call__(self, event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()
        if self.on_event is not None:
            self.on_event(event)

    def of(self, kind):
        with self.changed:
            return [e for e in self.events if isinstance(e, kind)]

    def steps(self) -> list[int]:
        return [e.step for e in self.of(StepEvent)]

    def wait_for(self, predicate, timeout=WAIT) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.events), timeout)


def run_in_thread(config, **kwargs):
    """Start ``execute`` in a thread; returns the thread and a one-item list for its result."""
    box = []
    thread = threading.Thread(target=lambda: box.append(run(config, **kwargs)))
    thread.start()
    return thread, box
