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


def ext_sub_config(folder: Path, model_dir: Path, *, steps: int = 4, params: dict | None = None,
                   suite: str = "fast") -> RunConfig:
    write_jsonl(folder / "true.jsonl", TRUE_ROWS)
    write_jsonl(folder / "false.jsonl", FALSE_ROWS)
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
        base_dir=folder,
    )


@pytest.fixture
def make_config(tmp_path, model_dir):
    return lambda **options: ext_sub_config(tmp_path, model_dir, **options)


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


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, model_dir):
    """One Ext-Sub run of 3 + 3 steps in a store: (folder, result, events, evaluation)."""
    folder = tmp_path_factory.mktemp("recipe")
    events, evaluation = [], FakeEvaluation()
    with Store.open(folder / "store.db") as store:
        result = execute(ext_sub_config(folder, model_dir, steps=3), store=store, listener=events.append,
                         evaluate_fn=evaluation)
    assert result.status == "finished", result.error
    return folder, result, events, evaluation


@pytest.mark.slow
def test_the_recipe_is_one_finished_run_with_the_combined_adapter(recipe_run):
    folder, result, _, _ = recipe_run
    assert result.adapter_dir == result.output_dir / "adapter" and result.steps == 6
    with Store.open(folder / "store.db", readonly=True) as store:
        parent = store.run(result.run_id)
        assert parent["method"] == "ext_sub" and parent["status"] == "finished"
        assert [e["phase"] for e in store.evaluations(result.run_id)] == ["before", "after"]
        assert [a["kind"] for a in store.artifacts(result.run_id)] == ["adapter"]


@pytest.mark.slow
def test_each_training_stage_is_a_recorded_sft_run_of_the_same_project(recipe_run):
    folder, result, _, _ = recipe_run
    with Store.open(folder / "store.db", readonly=True) as store:
        parent = store.run(result.run_id)
        stages = [r for r in store.runs() if r["id"] != result.run_id]
    assert [r["method"] for r in stages] == ["sft", "sft"]
    assert {r["project_id"] for r in stages} == {parent["project_id"]}
    assert all(r["status"] == "finished" for r in stages)
    record = json.loads((result.output_dir / STAGES_FILE).read_text())
    assert record["params"]["op"] == "ext-sub" and set(record["stages"]) == {"expert", "anti-expert"}
    expert = Path(record["stages"]["expert"]["adapter"])
    assert expert.parent.parent == result.output_dir / "stages" and "after" in record["stages"]["expert"]


@pytest.mark.slow
def test_the_adapter_is_the_ext_sub_of_the_two_stages_and_loads_with_peft(recipe_run, model_dir):
    folder, result, _, _ = recipe_run
    record = json.loads((result.output_dir / STAGES_FILE).read_text())
    expert, anti = (Path(record["stages"][role]["adapter"]) for role in ("expert", "anti-expert"))
    again = combine_adapters(expert, anti, folder / "again")
    saved, expected = (load_file(d / "adapter_model.safetensors") for d in (result.adapter_dir, again))
    assert saved.keys() == expected.keys() and all(torch.equal(saved[k], expected[k]) for k in saved)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), result.adapter_dir)


@pytest.mark.slow
def test_the_base_the_expert_and_the_combination_are_evaluated(recipe_run):
    _, _, events, evaluation = recipe_run
    # Before (base), the expert alone, the combination; the anti-expert is not evaluated.
    assert evaluation.phases == ["before", "after", "after"]
    assert [e.phase for e in events if isinstance(e, EvaluationEvent)] == ["before", "after"]
    assert any(isinstance(e, LogEvent) and "Ext-Sub against the expert alone" in e.message for e in events)


@pytest.mark.slow
def test_every_event_is_the_runs_own_one_curve_and_one_ending(recipe_run):
    _, result, events, _ = recipe_run
    assert {e.run_id for e in events} == {result.run_id}
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == list(range(1, 7)) and {e.total_steps for e in steps} == {6}
    assert [set(e.losses) - {"loss/total"} for e in steps] == [{"loss/expert"}] * 3 + [{"loss/anti-expert"}] * 3
    endings = [e for e in events if isinstance(e, (FinishedEvent, FailedEvent))]
    assert endings == [events[-1]] and endings[0].adapter_dir == str(result.adapter_dir)


@pytest.mark.slow
@pytest.mark.parametrize(("change", "says"), [
    (lambda config: config.data.pop("anti-expert"), "anti-expert"),
    (lambda config: setattr(config.data["anti-expert"], "path", "missing.jsonl"), "missing.jsonl"),
    (lambda config: config.method.params.update(op="merge"), "op"),
])
def test_bad_input_stops_before_anything_is_written(make_config, tmp_path, change, says):
    config = make_config()
    change(config)
    with Store.open(tmp_path / "store.db") as store:
        with pytest.raises(UserError, match=says):
            execute(config, store=store)
        assert store.projects() == [] and store.runs() == []
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_from_a_folder_that_is_not_an_ext_sub_run_is_refused(make_config, tmp_path):
    with pytest.raises(UserError, match="not the folder of an Ext-Sub run"):
        execute(make_config(suite="none"), resume=tmp_path)
