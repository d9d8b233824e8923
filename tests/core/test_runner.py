"""The run loop on a tiny llama: events, control (pause, stop, cancel), checkpoints and resume,
failures, and what lands in the store. The method is a small one of the tests' own
(run_helpers.py), so these tests do not depend on the real methods."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from run_helpers import (  # noqa: F401 (fixtures, used by name)
    WAIT,
    Recorder,
    TinyMethod,
    fresh_records_fixture,
    model_dir_fixture,
    one_thread_fixture,
    run,
    run_in_thread,
    tiny_config,
)
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from unlearn_studio.core.control import RunControl
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import EvaluationEvent, FailedEvent, FinishedEvent, LogEvent, StatusEvent, StepEvent
from unlearn_studio.core.files import MARKER, own_kind
from unlearn_studio.core.methods.base import DataRoles, Finish, Hyperparameter, Train
from unlearn_studio.core.model import loading as models
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.project.store_values import file_digest
from unlearn_studio.core.run import steps
from unlearn_studio.core.run.checkpoint import prune
from unlearn_studio.core.run.token_counter import TrainedTokenCounter

pytestmark = pytest.mark.slow  # every test here builds a model, and most train it


@pytest.fixture
def make_config(tmp_path, model_dir):
    return lambda **options: tiny_config(tmp_path, model_dir, **options)


def lora_weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(adapter_dir / "adapter_model.safetensors")


# ---- a whole run ---------------------------------------------------------------------------------


class PhaseRecorder:
    """evaluate_fn that notes each phase and whether the adapter was off, and gives fixed numbers."""

    def __init__(self):
        self.phases = []

    def __call__(self, model, tokenizer, phase, out_dir, **_):
        adapters_off = all(m.disable_adapters for m in model.modules() if isinstance(m, LoraLayer))
        self.phases.append((phase, adapters_off))
        return {"score": 1.0 if phase == "before" else 0.5}


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, model_dir):
    """One finished 6-step run with an evaluation before and after, in a store: (config, result,
    events, evaluation, store path)."""
    folder = tmp_path_factory.mktemp("evaluated")
    config = tiny_config(folder, model_dir, steps=6, suite="fast")
    events, evaluation = Recorder(), PhaseRecorder()
    with Store.open(folder / "store.db") as store:
        result = run(config, store=store, listener=events, evaluate_fn=evaluation)
    return config, result, events, evaluation, folder / "store.db"


def test_a_run_finishes_with_its_steps(evaluated_run):
    _, result, _, _, _ = evaluated_run
    assert result.status == "finished" and result.steps == 6 and result.error is None


def test_evaluation_runs_before_with_the_adapter_off_and_after_with_it_on(evaluated_run):
    _, _, events, evaluation, _ = evaluated_run
    assert evaluation.phases == [("before", True), ("after", False)]
    kinds = [type(e).__name__ for e in events.events]
    first_step, last_step = kinds.index("StepEvent"), len(kinds) - 1 - kinds[::-1].index("StepEvent")
    evaluations = [i for i, k in enumerate(kinds) if k == "EvaluationEvent"]
    assert evaluations[0] < first_step and evaluations[1] > last_step
    assert [e.phase for e in events.of(EvaluationEvent)] == ["before", "after"]


def test_events_start_with_running_end_with_finished_and_carry_the_run_id(evaluated_run):
    _, result, events, _, _ = evaluated_run
    assert isinstance(events.events[0], StatusEvent) and events.events[0].status == "running"
    assert isinstance(events.events[-1], FinishedEvent) and events.events[-1].status == "finished"
    assert {e.run_id for e in events.events} == {result.run_id}


def test_every_step_streams_every_loss_term_and_its_numbers(evaluated_run):
    _, _, events, _, _ = evaluated_run
    steps = events.of(StepEvent)
    assert [e.step for e in steps] == [1, 2, 3, 4, 5, 6]
    for e in steps:
        assert set(e.losses) == {f"loss/{term}" for term in TinyMethod.terms} | {"loss/total"}
        assert e.losses["loss/total"] == pytest.approx(e.losses["loss/forget"] + e.losses["loss/retain"])
        assert e.total_steps == 6 and e.lr >= 0 and e.grad_norm > 0
        assert e.tokens_per_s > 0 and e.peak_memory_mb > 0 and e.eta_s >= 0
    assert steps[-1].eta_s == 0
    assert steps[-1].epoch == pytest.approx(6 / 3)  # 5 forget rows in batches of 2: 3 steps an epoch
    assert steps[0].lr == 0 and steps[1].lr > 0  # the linear warmup over 2 steps starts at 0


def test_the_run_folder_holds_the_config_and_the_adapter(evaluated_run):
    config, result, _, _, _ = evaluated_run
    assert result.output_dir == config.resolve_path("runs") / result.run_id
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert RunConfig.load(result.output_dir / "config.toml").training.max_steps == 6


def test_the_store_records_the_run_and_its_project(evaluated_run):
    _, result, _, _, store_path = evaluated_run
    with Store.open(store_path, readonly=True) as store:
        row = store.run(result.run_id)
        assert row["status"] == "finished" and row["error"] is None
        assert Path(row["output_dir"]) == result.output_dir
        assert [p["name"] for p in store.projects()] == ["tiny run"]


def test_the_store_holds_every_steps_metrics(evaluated_run):
    _, result, _, _, store_path = evaluated_run
    with Store.open(store_path, readonly=True) as store:
        metrics = store.metrics(result.run_id)
    keys = {"loss/forget", "loss/retain", "loss/total", "lr", "grad_norm", "tokens_per_s", "peak_memory_mb"}
    assert len(metrics) == 6 * len(keys)
    assert {key for key, _, _ in metrics} == keys
    assert sorted({step for _, step, _ in metrics}) == [1, 2, 3, 4, 5, 6]


def test_the_store_holds_the_adapter_with_its_digest(evaluated_run):
    _, result, _, _, store_path = evaluated_run
    with Store.open(store_path, readonly=True) as store:
        (artifact,) = store.artifacts(result.run_id)
    assert artifact["kind"] == "adapter" and Path(artifact["path"]) == result.adapter_dir
    assert artifact["sha256"] == file_digest(result.adapter_dir)[0]


def test_the_store_holds_both_evaluations(evaluated_run):
    _, result, _, _, store_path = evaluated_run
    with Store.open(store_path, readonly=True) as store:
        rows = store.evaluations(result.run_id)
    assert [(e["phase"], e["suite"], e["aggregates"]) for e in rows] == [
        ("before", "fast", {"score": 1.0}), ("after", "fast", {"score": 0.5})]


# ---- control -------------------------------------------------------------------------------------


def test_pause_holds_the_run_until_resume(make_config):
    control = RunControl()
    paused = threading.Event()

    def on_event(event):
        if isinstance(event, StepEvent) and event.step >= 3 and not paused.is_set() and not control.paused:
            control.pause()
        if isinstance(event, StatusEvent) and event.status == "paused":
            paused.set()

    events = Recorder(on_event)
    # A checkpoint every step logs an event after every step, and any event that is not a step
    # flushes the step events the batcher holds: the listener sees each step before the next.
    thread, box = run_in_thread(make_config(steps=8, checkpoint_every=1), listener=events, control=control)
    try:
        assert paused.wait(WAIT), "the run never paused"
        computed = len(TinyMethod.computed)
        seen = len(events.steps())
        assert computed == seen == 3  # held between step 3 and step 4
        # Nothing may happen while paused: no step computed, no step event.
        assert not events.wait_for(lambda _: len(events.steps()) > seen, timeout=0.5)
        assert len(TinyMethod.computed) == computed
    finally:
        control.resume()
        thread.join(WAIT)
    assert not thread.is_alive()
    (result,) = box
    assert result.status == "finished" and result.steps == 8
    assert events.steps() == list(range(1, 9))
    statuses = [e.status for e in events.of(StatusEvent)]
    assert statuses.index("paused") < statuses.index("resumed")


def test_cancel_while_paused_ends_the_run(make_config):
    control = RunControl()
    control.pause()  # paused before the first step
    events = Recorder(lambda e: control.cancel() if isinstance(e, StatusEvent) and e.status == "paused" else None)
    thread, box = run_in_thread(make_config(steps=8), listener=events, control=control)
    thread.join(WAIT)
    assert not thread.is_alive()
    (result,) = box
    assert result.status == "cancelled" and result.steps == 0 and TinyMethod.computed == []


def test_cancel_ends_within_one_step_and_keeps_checkpoints(make_config):
    control = RunControl()
    asked = []

    def on_event(event):
        if isinstance(event, StepEvent) and event.step >= 3 and not asked:
            asked.append(len(TinyMethod.computed))
            control.cancel()

    events = Recorder(on_event)
    thread, box = run_in_thread(make_config(steps=20, checkpoint_every=1), listener=events, control=control)
    thread.join(WAIT)
    assert not thread.is_alive()
    (result,) = box
    assert result.status == "cancelled" and result.adapter_dir is None
    # The listener runs between steps, so no step may start after the request.
    assert len(TinyMethod.computed) - asked[0] <= 1
    assert result.steps == len(TinyMethod.computed) < 20
    last = events.events[-1]
    assert isinstance(last, FailedEvent) and last.status == "cancelled"
    assert not (result.output_dir / "adapter").exists()
    # The newest checkpoints stay (keep_checkpoints = 2).
    kept = sorted(p.name for p in (result.output_dir / "checkpoints").iterdir())
    assert kept == [f"step-{result.steps - 1:06d}", f"step-{result.steps:06d}"]


def test_stop_and_save_leaves_a_loadable_adapter(make_config, model_dir):
    control = RunControl()
    events = Recorder(lambda e: control.stop_and_save() if isinstance(e, StepEvent) and e.step >= 4 else None)
    thread, box = run_in_thread(make_config(steps=30, checkpoint_every=1), listener=events, control=control)
    thread.join(WAIT)
    assert not thread.is_alive()
    (result,) = box
    assert result.status == "stopped" and result.steps == 4
    assert [e.status for e in events.of(FinishedEvent)] == ["stopped"]
    assert "stopping" in [e.status for e in events.of(StatusEvent)]
    # A checkpoint of the stop step lets the run be continued later.
    checkpoint = result.output_dir / "checkpoints" / f"step-{result.steps:06d}"
    assert (checkpoint / "state.json").is_file()

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    loaded = PeftModel.from_pretrained(base, result.adapter_dir)
    saved = lora_weights(result.adapter_dir)
    assert any(name.endswith("lora_B.weight") and value.abs().sum() > 0 for name, value in saved.items())
    ids = torch.tensor([[1, 5, 9, 12]])
    assert torch.isfinite(loaded(input_ids=ids).logits).all()


def test_the_run_marks_its_folders_and_pruning_keeps_checkpoints_it_did_not_write(make_config):
    result = run(make_config(steps=4, checkpoint_every=1))
    assert own_kind(result.output_dir) == "run" and own_kind(result.adapter_dir) == "adapter"
    root = result.output_dir / "checkpoints"
    assert {own_kind(p) for p in root.iterdir()} == {"checkpoint"}
    # A copy the user made of a checkpoint, under a checkpoint's name: never pruned.
    copy = root / "step-000001"
    shutil.copytree(root / "step-000003", copy)
    (copy / MARKER).unlink()
    prune(root, keep=1)
    assert sorted(p.name for p in root.iterdir()) == ["step-000001", "step-000004"]


# ---- checkpoints and resume ----------------------------------------------------------------------


def test_checkpoint_resume_gives_the_same_adapter(make_config, tmp_path):
    """20 steps in one go == 10 steps, a crash at step 13, and a resume from the step-10 checkpoint.

    Exact because everything that feeds the steps after 10 is restored: LoRA weights, AdamW's
    moments and step counts, the scheduler position, every role's stream position (the order
    comes from (seed, role, epoch) alone) and the RNG states; dropout is 0 and the CPU kernels
    are deterministic for equal shapes.
    """
    straight = run(make_config(steps=20, checkpoint_every=5))
    assert straight.status == "finished"

    # The crash comes from the method object, not the project: the project resumed must match the checkpoint's.
    broken = run(make_config(steps=20, checkpoint_every=5), method=TinyMethod({"crash_at": 13}))
    assert broken.status == "failed" and broken.steps == 12
    kept = sorted(p.name for p in (broken.output_dir / "checkpoints").iterdir())
    assert kept == ["step-000005", "step-000010"]

    TinyMethod.computed = []
    events = Recorder()
    resumed = run(make_config(steps=20, checkpoint_every=5), resume=broken.output_dir, listener=events)
    assert resumed.status == "finished" and resumed.steps == 20
    assert (resumed.run_id, resumed.output_dir) == (broken.run_id, broken.output_dir)
    assert TinyMethod.computed == list(range(11, 21))
    assert events.steps() == list(range(11, 21))
    assert events.of(StatusEvent)[0].status == "resumed"

    expected, got = lora_weights(straight.adapter_dir), lora_weights(resumed.adapter_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)


def test_a_method_that_raises_fails_the_run_naming_the_step_with_its_traceback(make_config):
    events = Recorder()
    broken = run(make_config(steps=8), method=TinyMethod({"crash_at": 3}), listener=events)
    assert broken.status == "failed" and broken.steps == 2
    failure = events.of(FailedEvent)[-1]
    assert "RuntimeError" in failure.message and "step 3" in failure.message
    assert "the method broke on purpose" in failure.traceback


def test_resume_from_a_checkpoint_folder_continues_the_same_run(make_config):
    first = run(make_config(steps=4, checkpoint_every=2, retain_role=False))
    checkpoint = first.output_dir / "checkpoints" / "step-000002"
    again = run(make_config(steps=4, checkpoint_every=2, retain_role=False), resume=checkpoint)
    assert again.status == "finished" and again.run_id == first.run_id and again.steps == 4


@pytest.mark.parametrize(("change", "key"), [({"r": 8}, "lora.r"), ({"roles": ["q"]}, "lora.roles")])
def test_resume_with_another_adapter_shape_is_refused_naming_the_key(make_config, change, key):
    first = run(make_config(steps=4, checkpoint_every=2, retain_role=False))
    checkpoint = first.output_dir / "checkpoints" / "step-000002"
    config = make_config(steps=4, retain_role=False)
    for name, value in change.items():
        setattr(config.lora, name, value)
    with pytest.raises(UserError) as refused:
        run(config, resume=checkpoint)
    assert key in refused.value.problem and "On resume only these may change" in refused.value.fix


def test_resume_from_a_folder_without_checkpoints_is_refused(make_config, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        run(make_config(steps=4), resume=tmp_path)
    with pytest.raises(UserError, match="nothing to resume"):
        run(make_config(steps=4), resume=tmp_path / "missing")


def test_resume_in_the_store_continues_the_same_run_row(make_config, tmp_path):
    with Store.open(tmp_path / "store.db") as store:
        broken = run(make_config(steps=6, checkpoint_every=3, retain_role=False), store=store,
                     method=TinyMethod({"crash_at": 5}))
        assert store.run(broken.run_id)["status"] == "failed"
        resumed = run(make_config(steps=6, checkpoint_every=3, retain_role=False),
                                 store=store, resume=broken.output_dir)
        assert resumed.run_id == broken.run_id and len(store.runs()) == 1
        row = store.run(resumed.run_id)
        assert row["status"] == "finished" and row["error"] is None
        # Step 4 ran twice (before the crash, and after the resume from step 3): one row is kept.
        steps = [step for key, step, _ in store.metrics(resumed.run_id, "loss/forget")]
        assert steps == [1, 2, 3, 4, 5, 6]


# ---- failures ------------------------------------------------------------------------------------


def test_nan_loss_fails_naming_step_and_term_and_keeps_the_last_good_checkpoint(make_config, tmp_path):
    events = Recorder()
    with Store.open(tmp_path / "store.db") as store:
        result = run(make_config(steps=20, checkpoint_every=3, params={"nan_at": 7}),
                                store=store, listener=events)
        row = store.run(result.run_id)
    assert result.status == "failed" and result.steps == 6
    failure = events.events[-1]
    assert isinstance(failure, FailedEvent) and failure.status == "failed"
    assert "loss/forget is nan at step 7" in failure.message
    assert "learning rate" in failure.fix and "step-000006" in failure.fix
    assert row["status"] == "failed" and "loss/forget is nan at step 7" in row["error"]
    checkpoints = result.output_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000003", "step-000006"]
    assert all(torch.isfinite(v).all() for v in lora_weights(checkpoints / "step-000006" / "adapter").values())
    assert not (result.output_dir / "adapter").exists()


def test_out_of_memory_fails_with_concrete_advice(make_config):
    events = Recorder()
    result = run(make_config(steps=5, params={"crash_at": 2, "crash": "oom"}), listener=events)
    assert result.status == "failed"
    failure = events.of(FailedEvent)[-1]
    assert "Out of memory at step 2" in failure.message
    for advice in ("batch_size", "max_length", "bf16", "lora.roles"):
        assert advice in failure.fix


def test_missing_required_role_fails_before_the_model_is_loaded(make_config, monkeypatch, tmp_path):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model must not be loaded for a config that lacks a required role")

    monkeypatch.setattr(models, "load_model", no_loading)
    config = make_config()
    config.data = {"retain": config.data["retain"]}
    with Store.open(tmp_path / "store.db") as store:
        with pytest.raises(UserError) as caught:
            run(config, store=store)
        assert store.runs() == [] and store.projects() == []
    assert "forget" in caught.value.problem and "[data.forget]" in caught.value.fix
    assert not (tmp_path / "runs").exists()


def test_bad_method_parameter_fails_before_the_model_is_loaded(make_config, monkeypatch):
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(UserError, match="'method.params.weight'"):
        run(make_config(params={"weight": "heavy"}))
    with pytest.raises(UserError, match="no hyperparameter 'method.params.wieght'"):
        run(make_config(params={"wieght": 1.0}))


def test_epochs_count_steps_on_the_forget_set(make_config):
    config = make_config()
    config.training.max_steps, config.training.epochs = None, 2.0
    events = Recorder()
    result = run(config, listener=events)
    # 5 forget rows in batches of 2: 3 steps an epoch, whatever the retain set's size.
    assert result.status == "finished" and result.steps == 6
    assert events.of(StepEvent)[-1].epoch == pytest.approx(2.0)


# ---- method hooks: epoch ends, adapter finalisation, method state and scalars ---------------------


class HookedMethod(TinyMethod):
    """TinyMethod that ends the run after ``stop_after`` epochs, negates its adapter at the end,
    reports a scalar per epoch and keeps the epochs it has seen as resumable state."""

    name = "tiny_hooked"
    stages = (Train(), Finish("negate"))
    hyperparameters = (*TinyMethod.hyperparameters,
                       Hyperparameter("stop_after", int, 0, "epochs before ending the run (0: never)", "test"))
    finalized = 0

    def __init__(self, params=None):
        super().__init__(params)
        self.epochs_seen: list[int] = []

    def on_epoch_end(self, context, epoch):
        self.epochs_seen.append(epoch)
        context.report({"tiny/epochs_seen": len(self.epochs_seen)})
        context.log("info", f"epoch {epoch} seen")
        return epoch == self.params["stop_after"]

    def finalize_adapter(self, model):
        HookedMethod.finalized += 1
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.neg_()

    def state_dict(self):
        return {"epochs_seen": self.epochs_seen}

    def load_state_dict(self, state):
        self.epochs_seen = list(state["epochs_seen"])


@pytest.fixture
def hooked():
    HookedMethod.finalized = 0


def test_on_epoch_end_can_end_the_run_early_and_reports_reach_events_and_store(make_config, hooked, tmp_path):
    config = make_config(steps=30, params={"stop_after": 2})
    config.method.name = "tiny_hooked"
    events = Recorder()
    with Store.open(tmp_path / "store.db") as store:
        result = run(config, method=HookedMethod, store=store, listener=events)
        stored = store.metrics(result.run_id, "tiny/epochs_seen")
    # 5 forget rows in batches of 2: 3 steps an epoch, so epoch 2 ends at step 6.
    assert result.status == "finished" and result.steps == 6
    steps = events.of(StepEvent)
    assert steps[-1].extra == {"tiny/epochs_seen": 2.0}
    assert steps[0].extra == {}
    assert [(step, value) for _, step, value in stored if step in (4, 6)] == [(4, 1.0), (6, 2.0)]
    assert any("epoch 2 seen" in e.message for e in events.of(LogEvent))
    assert any("ended the run after epoch 2" in e.message for e in events.of(LogEvent))


def test_finalize_adapter_changes_the_saved_adapter_but_not_the_checkpoints(make_config, hooked):
    config = make_config(steps=6, checkpoint_every=6)
    config.method.name = "tiny_hooked"
    result = run(config, method=HookedMethod)
    assert HookedMethod.finalized == 1
    final = lora_weights(result.adapter_dir)
    checkpoint = lora_weights(result.output_dir / "checkpoints" / "step-000006" / "adapter")
    for name, value in final.items():
        expected = -checkpoint[name] if "lora_B" in name else checkpoint[name]
        torch.testing.assert_close(value, expected, rtol=0, atol=0)
    state = json.loads((result.output_dir / "checkpoints" / "step-000006" / "state.json").read_text())
    assert state["method"] == {"epochs_seen": [1, 2]}


def test_method_state_is_restored_on_resume(make_config, hooked):
    config = make_config(steps=9, checkpoint_every=3)
    config.method.name = "tiny_hooked"
    broken = run(config, method=HookedMethod({"crash_at": 8}))
    assert broken.status == "failed"
    events = Recorder()
    resumed = run(config, method=HookedMethod, resume=broken.output_dir, listener=events)
    assert resumed.status == "finished"
    # The step-6 checkpoint remembered epochs 1 and 2; epoch 3 ends at step 9 after the resume.
    assert events.of(StepEvent)[-1].extra == {"tiny/epochs_seen": 3.0}


class PoolMethod(TinyMethod):
    """Reads its retain rows whole through context.data (like ICU's neighbour pool), never as batches."""

    name = "tiny_pool"
    roles = DataRoles(required=("forget",), optional=("retain",), not_batched=("retain",))
    seen_roles: ClassVar[list[set[str]]] = []

    def loss_terms(self, context, batch):
        PoolMethod.seen_roles.append(set(batch))
        assert len(context.data["retain"].examples) == 3
        return {"forget": self._ce(context, batch["forget"])}


def test_roles_that_are_not_batched_get_no_stream_and_no_tokens(make_config):
    PoolMethod.seen_roles = []
    config = make_config(steps=3, checkpoint_every=2)
    config.method.name = "tiny_pool"
    events = Recorder()
    result = run(config, method=PoolMethod, listener=events)
    assert result.status == "finished"
    assert PoolMethod.seen_roles == [{"forget"}] * 3
    state = json.loads((result.output_dir / "checkpoints" / "step-000002" / "state.json").read_text())
    assert set(state["streams"]) == {"forget"}


# ---- terms in groups: one backward per forward pass ------------------------------------------------


class GroupedMethod(TinyMethod):
    """TinyMethod's terms yielded one forward pass at a time; it notes, as each retain pass starts,
    whether the forget pass's gradient has already reached the adapter."""

    name = "tiny_grouped"
    grads_before_retain: ClassVar[list[bool]] = []

    def loss_terms(self, context, batch):
        yield {"forget": self.params["weight"] * self._ce(context, batch["forget"])}
        lora = [p for name, p in context.model.named_parameters() if "lora_B" in name]
        GroupedMethod.grads_before_retain.append(any(p.grad is not None and bool(p.grad.any()) for p in lora))
        yield {"retain": 0.5 * self._ce(context, batch["retain"])}


def test_grouped_terms_are_backpropagated_one_by_one_and_train_the_same_adapter(make_config):
    plain = run(make_config(steps=4, lr=0.1))
    GroupedMethod.grads_before_retain = []
    events = Recorder()
    grouped = run(make_config(steps=4, lr=0.1), method=GroupedMethod, listener=events)
    assert grouped.status == plain.status == "finished"
    assert GroupedMethod.grads_before_retain == [True] * 4  # the forget pass was backpropagated first
    for name, value in lora_weights(plain.adapter_dir).items():
        torch.testing.assert_close(lora_weights(grouped.adapter_dir)[name], value, rtol=1e-5, atol=1e-7)
    assert set(events.of(StepEvent)[-1].losses) == {"loss/forget", "loss/retain", "loss/total"}


def test_engines_that_want_one_backward_get_the_groups_summed(make_config, monkeypatch):
    from accelerate.utils import DistributedType

    plain = run(make_config(steps=3, lr=0.1))
    monkeypatch.setattr(steps, "ONE_BACKWARD_PER_STEP", (DistributedType.NO,))
    GroupedMethod.grads_before_retain = []
    summed = run(make_config(steps=3, lr=0.1), method=GroupedMethod)
    assert GroupedMethod.grads_before_retain == [False] * 3  # nothing was backpropagated before the sum
    for name, value in lora_weights(plain.adapter_dir).items():
        torch.testing.assert_close(lora_weights(summed.adapter_dir)[name], value, rtol=1e-5, atol=1e-7)


class ExtraPassMethod(TinyMethod):
    """Trains on each forget batch twice and runs one frozen pass; only the trained passes count."""

    name = "tiny_extra_pass"
    forget_tokens: ClassVar[list[int]] = []

    def loss_terms(self, context, batch):
        forget = batch["forget"]
        ExtraPassMethod.forget_tokens.append(forget.n_tokens)
        with context.original_model() as original:
            original(input_ids=forget.input_ids, attention_mask=forget.attention_mask)
        return {"forget": self._ce(context, forget) + self._ce(context, forget)}


def test_tokens_per_second_counts_the_tokens_of_every_trained_pass(make_config, monkeypatch):
    counted = []
    total = TrainedTokenCounter.total
    monkeypatch.setattr(TrainedTokenCounter, "total", lambda self: counted.append(total(self)) or counted[-1])
    ExtraPassMethod.forget_tokens = []
    result = run(make_config(steps=3, retain_role=False), method=ExtraPassMethod)
    assert result.status == "finished"
    assert counted == [2 * n for n in ExtraPassMethod.forget_tokens] and all(n > 0 for n in counted)
