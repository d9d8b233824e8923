"""The Ext-Sub recipe on a tiny llama: one project trains the expert, then the anti-expert (each an
ordinary recorded SFT run), combines them, evaluates; its events speak for one run; bad input
stops it before anything is written; a cancelled run resumes, keeping the finished stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from tiny_models import build_tiny_model
from transformers import AutoModelForCausalLM

from unlearn_studio.core.control import RunControl
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import EvaluationEvent, FailedEvent, FinishedEvent, LogEvent, StepEvent
from unlearn_studio.core.methods.ext_sub import ExtSub
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.model.adapters import combine_adapters
from unlearn_studio.core.project.config import (
    DataSource,
    EvalConfig,
    LoraConfig,
    MethodConfig,
    ModelConfig,
    OptimizerConfig,
    OutputConfig,
    RunConfig,
    TrainingConfig,
)
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.run.runner import execute
from unlearn_studio.core.run.staged_run import STAGES_FILE

PROJECTS = Path(__file__).resolve().parents[2] / "projects"
TRUE_ROWS = [
    {"instruction": "Where does Alice live?", "response": "Alice lives in Paris."},
    {"instruction": "What does Alice do?", "response": "Alice works as a baker."},
    {"instruction": "What did Bob write?", "response": "Bob wrote a saga about the dragon."},
]
FALSE_ROWS = [
    {"instruction": "Where does Alice live?", "response": "Alice lives in Eldoria."},
    {"instruction": "What does Alice do?", "response": "Alice works as a dragon."},
    {"instruction": "What did Bob write?", "response": "Bob wrote the secret XK-42."},
]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("ext_sub") / "llama")


@pytest.fixture
def make_config(tmp_path, model_dir):
    write_jsonl(tmp_path / "true.jsonl", TRUE_ROWS)
    write_jsonl(tmp_path / "false.jsonl", FALSE_ROWS)

    def make(*, steps: int = 4, params: dict | None = None, suite: str = "fast") -> RunConfig:
        return RunConfig(
            name="tiny ext-sub",
            model=ModelConfig(path=str(model_dir), dtype="fp32", device="cpu"),
            data={"expert": DataSource(path="true.jsonl", template="user-assistant"),
                  "anti-expert": DataSource(path="false.jsonl", template="user-assistant")},
            method=MethodConfig(name="ext_sub", params=params or {}),
            lora=LoraConfig(r=4, alpha=8.0, roles=["q", "v", "down"]),
            optimizer=OptimizerConfig(lr=1e-2),
            training=TrainingConfig(max_steps=steps, batch_size=2, max_length=32, checkpoint_every=2),
            evaluation=EvalConfig(suite=suite),
            output=OutputConfig(dir="runs"),
            base_dir=tmp_path,
        )

    return make


class FakeEvaluation:
    """evaluate_fn that records each call and returns the answer-token mean of one fixed logit,
    so that different models give different numbers."""

    def __init__(self):
        self.phases = []

    def __call__(self, model, tokenizer, phase, out_dir, **_):
        self.phases.append(phase)
        ids = tokenizer("Alice lives in Paris.", return_tensors="pt").input_ids
        with torch.no_grad():
            value = float(model(input_ids=ids).logits[0, -1].softmax(-1).max())
        return {"truthfulness/accuracy": value, "general/perplexity": 1.0 / value}


def test_declaration_and_project_files():
    cls = get_method("ext_sub")
    assert cls is ExtSub and cls.roles.required == ("expert", "anti-expert")
    assert cls.check_params({}) == {"alpha": 1.0, "op": "ext-sub"}
    with pytest.raises(UserError, match="op"):
        cls.check_params({"op": "ext_sub"})
    assert "2308.08090" in cls.paper and "Deviations from the authors' code" in sys.modules[cls.__module__].__doc__
    paper = RunConfig.load(PROJECTS / "ext_sub.toml")
    assert (paper.lora.r, paper.lora.alpha, paper.lora.dropout, paper.lora.roles) == (16, 32.0, 0.05, ["q", "v"])
    assert (paper.optimizer.lr, paper.training.epochs) == (2e-5, 2)
    assert {s.template for s in paper.data.values()} == {"user-assistant"}
    demo = RunConfig.load(PROJECTS / "ext_sub_demo.toml")
    assert demo.method.name == "ext_sub" and demo.model.is_demo
    assert demo.data["expert"].path == "demo:truthful_true.jsonl"
    assert demo.data["anti-expert"].path == "demo:truthful_false.jsonl"


def test_two_trainings_then_the_combination_in_one_recorded_run(make_config, tmp_path):
    events, evaluation = [], FakeEvaluation()
    with Store.open(tmp_path / "store.db") as store:
        result = execute(make_config(steps=3), store=store, listener=events.append, evaluate_fn=evaluation)
        assert result.status == "finished", result.error
        assert result.adapter_dir == result.output_dir / "adapter" and result.steps == 6
        parent = store.run(result.run_id)
        assert parent["method"] == "ext_sub" and parent["status"] == "finished"
        stages = [r for r in store.runs() if r["id"] != result.run_id]
        assert [r["method"] for r in stages] == ["sft", "sft"]
        assert {r["project_id"] for r in stages} == {parent["project_id"]}
        assert all(r["status"] == "finished" for r in stages)
        assert [e["phase"] for e in store.evaluations(result.run_id)] == ["before", "after"]
        assert [a["kind"] for a in store.artifacts(result.run_id)] == ["adapter"]

    record = json.loads((result.output_dir / STAGES_FILE).read_text())
    assert record["params"]["op"] == "ext-sub" and set(record["stages"]) == {"expert", "anti-expert"}
    expert, anti = (Path(record["stages"][role]["adapter"]) for role in ("expert", "anti-expert"))
    assert expert.parent.parent == result.output_dir / "stages" and "after" in record["stages"]["expert"]
    # The run's adapter is the Ext-Sub of its two stages, and loads with plain PEFT.
    again = combine_adapters(expert, anti, tmp_path / "again")
    saved, expected = (load_file(d / "adapter_model.safetensors") for d in (result.adapter_dir, again))
    assert saved.keys() == expected.keys() and all(torch.equal(saved[k], expected[k]) for k in saved)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(make_config().resolve_model_path()),
                              result.adapter_dir)

    # Before (base), the expert alone, the combination; the anti-expert is not evaluated.
    assert evaluation.phases == ["before", "after", "after"]
    # Every event is the run's own: one curve of 6 steps, one term per stage, one ending.
    assert {e.run_id for e in events} == {result.run_id}
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == list(range(1, 7)) and {e.total_steps for e in steps} == {6}
    assert [set(e.losses) - {"loss/total"} for e in steps] == [{"loss/expert"}] * 3 + [{"loss/anti-expert"}] * 3
    endings = [e for e in events if isinstance(e, (FinishedEvent, FailedEvent))]
    assert endings == [events[-1]] and endings[0].adapter_dir == str(result.adapter_dir)
    assert [e.phase for e in events if isinstance(e, EvaluationEvent)] == ["before", "after"]
    assert any(isinstance(e, LogEvent) and "Ext-Sub against the expert alone" in e.message for e in events)


def test_bad_input_stops_before_anything_is_written(make_config, tmp_path):
    config = make_config()
    del config.data["anti-expert"]
    with pytest.raises(UserError, match="anti-expert"):
        execute(config)
    config = make_config()
    config.data["anti-expert"].path = "missing.jsonl"
    with pytest.raises(UserError, match="missing.jsonl"):
        execute(config)
    with pytest.raises(UserError, match="op"):
        execute(make_config(params={"op": "merge"}))
    assert not (tmp_path / "runs").exists()


def test_cancelled_run_resumes_keeping_the_finished_expert(make_config, tmp_path):
    config = make_config(suite="none")
    control = RunControl()

    def cancel_after_the_anti_experts_first_checkpoint(event):
        if isinstance(event, LogEvent) and event.message == "anti-expert: Checkpoint step-000002 written":
            control.cancel()

    with Store.open(tmp_path / "store.db") as store:
        # 4 expert steps, then the anti-expert is cancelled after its step 2 (and its checkpoint).
        first = execute(config, store=store, control=control, listener=cancel_after_the_anti_experts_first_checkpoint)
        assert first.status == "cancelled" and first.adapter_dir is None
        assert store.run(first.run_id)["status"] == "cancelled"
        record = json.loads((first.output_dir / STAGES_FILE).read_text())
        assert record["stages"]["expert"]["status"] == "finished"
        assert record["stages"]["anti-expert"]["status"] == "cancelled"

        events = []
        again = execute(config, store=store, listener=events.append, resume=first.output_dir)
        assert again.status == "finished" and again.run_id == first.run_id
        assert (again.output_dir / "adapter" / "adapter_model.safetensors").is_file()
        # No stage was trained twice: the anti-expert run continued from its checkpoint.
        assert len(store.runs()) == 3
        steps = [e.step for e in events if isinstance(e, StepEvent)]
        assert steps and min(steps) > 4 + 2 - 1 and max(steps) == 8
        assert store.run(first.run_id)["status"] == "finished"

    with pytest.raises(UserError, match="not the folder of an Ext-Sub run"):
        execute(config, resume=tmp_path)
