"""The fault suite of the run side: each fault injected, with the message the user gets, how the run
ends and what is on disk afterwards. A refusal leaves every file and every store row as it was.

The command-line side (exit codes, kill -9 and an exact resume) is tests/e2e/test_faults_cli.py;
docs/RELIABILITY.md is the catalogue of these cases.
"""

from __future__ import annotations

import errno
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import torch
from run_helpers import (  # noqa: F401 (fixtures, used by name)
    Recorder,
    TinyMethod,
    fresh_records_fixture,
    model_dir_fixture,
    one_thread_fixture,
    run,
    tiny_config,
)
from safetensors.torch import load_file, save_file
from tiny_models import build_tiny_model
from transformers import AutoModelForCausalLM

from unlearn_studio.core.control import RunControl
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import FailedEvent, LogEvent, StatusEvent, StepEvent
from unlearn_studio.core.methods.base import DataRoles
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.run import checkpoint as checkpoints
from unlearn_studio.core.run import training_run

pytestmark = pytest.mark.slow  # every test here builds a model, and most train it
ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256: what "nothing changed on disk" compares."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def saved(runs: Path) -> dict[str, str]:
    """The files of finished writes: not a checkpoint being written, not the trackers' growing logs."""
    return {name: digest for name, digest in files(runs).items() if ".tmp-" not in name and "/logs/" not in name}


def rows(store_path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of the store."""
    with sqlite3.connect(store_path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(map(repr, db.execute(f"SELECT * FROM {table}"))) for table in tables}


@pytest.fixture
def crashed_run(tmp_path, model_dir):
    """A run in a store that crashed at step 5 with checkpoints at steps 2 and 4: (config, result, store)."""
    config = tiny_config(tmp_path, model_dir, steps=8, checkpoint_every=2)
    with Store.open(tmp_path / "store.db") as store:
        result = run(config, store=store, method=TinyMethod({"crash_at": 5}))
    assert result.status == "failed" and result.steps == 4
    return config, result, tmp_path / "store.db"


# ---- resume: the project is compared with the checkpoint first, and a mismatch touches nothing -------


def assert_refused_untouched(config, result, store_path, says: list[str]):
    before_files, before_rows = files(result.output_dir), rows(store_path)
    with Store.open(store_path) as store, pytest.raises(UserError) as refused:
        run(config, store=store, resume=result.output_dir)
    for text in says:
        assert text in refused.value.problem, refused.value.problem
    assert "On resume only these may change" in refused.value.fix
    assert files(result.output_dir) == before_files
    assert rows(store_path) == before_rows  # the run is still "failed", its metrics all there


def test_resume_with_another_lora_rank_is_refused_and_touches_nothing(crashed_run):
    config, result, store_path = crashed_run
    config.lora.r = 8
    assert_refused_untouched(config, result, store_path, ["lora.r: 4 then, 8 now"])


def test_resume_with_another_data_file_is_refused_naming_it(crashed_run):
    config, result, store_path = crashed_run
    forget = config.resolve_path(config.data["forget"].path)
    forget.write_text(forget.read_text().replace("Paris", "Rome"), encoding="utf-8")
    assert_refused_untouched(config, result, store_path, ["data.forget (the contents) changed"])


def test_resume_with_a_changed_method_parameter_is_refused(crashed_run):
    config, result, store_path = crashed_run
    config.method.params = {"weight": 2.0}
    assert_refused_untouched(config, result, store_path, ["method.params.weight"])


def test_resume_from_a_checkpoint_with_diverged_weights_is_refused(crashed_run):
    config, result, store_path = crashed_run
    weights_file = result.output_dir / "checkpoints" / "step-000004" / "adapter" / "adapter_model.safetensors"
    weights = load_file(weights_file)
    save_file({name: value * 1e9 for name, value in weights.items()}, weights_file)
    before_rows = rows(store_path)
    with Store.open(store_path) as store, pytest.raises(UserError) as refused:
        run(config, store=store, resume=result.output_dir)
    assert "is not good" in refused.value.problem and "diverged" in refused.value.problem
    assert "earlier checkpoint" in refused.value.fix
    assert rows(store_path) == before_rows


# ---- resume with settings that may change: they take effect ------------------------------------------


def test_a_lower_learning_rate_takes_effect_on_resume_and_the_log_says_so(crashed_run, tmp_path, model_dir):
    config, result, store_path = crashed_run
    config.optimizer.lr = 1e-3
    events = Recorder()
    with Store.open(store_path) as store:
        resumed = run(config, store=store, resume=result.output_dir, listener=events)
        assert resumed.status == "finished" and resumed.run_id == result.run_id
        assert store.run_config(resumed.run_id).optimizer.lr == 1e-3  # the record says what the run went on with
    assert any("optimizer.lr 0.01 -> 0.001" in e.message for e in events.of(LogEvent))
    # From step 5 the learning rate is the one of a run that had 1e-3 from the start.
    straight_folder = tmp_path / "straight"
    straight_folder.mkdir()
    straight_events = Recorder()
    run(tiny_config(straight_folder, model_dir, steps=8, checkpoint_every=2, lr=1e-3), listener=straight_events)
    expected = {e.step: e.lr for e in straight_events.of(StepEvent)}
    assert {e.step: e.lr for e in events.of(StepEvent)} == {step: expected[step] for step in range(5, 9)}


def test_recovering_from_a_divergence_works_as_the_message_advises(crashed_run):
    """The defect: lr = 1e10 called a diverged checkpoint "the last good one", and resuming with a
    lower learning rate still trained at 1e10 (the saved scheduler was restored)."""
    config, result, store_path = crashed_run
    config.optimizer.lr = 1e10
    events = Recorder()
    with Store.open(store_path) as store:
        diverged = run(config, store=store, resume=result.output_dir, listener=events)
    assert diverged.status == "failed" and diverged.steps == 4
    failure = events.of(FailedEvent)[-1]
    assert "the adapter's largest weight" in failure.message and "at step 5" in failure.message
    assert "step-000004" in failure.fix and "learning rate" in failure.fix
    kept = result.output_dir / "checkpoints"
    assert sorted(p.name for p in kept.iterdir()) == ["step-000002", "step-000004"]  # none from the diverged step
    assert all(value.abs().max() < 1e4 for value in load_file(kept / "step-000004" / "adapter" /
                                                             "adapter_model.safetensors").values())
    config.optimizer.lr = 1e-3
    with Store.open(store_path) as store:
        recovered = run(config, store=store, resume=result.output_dir)
        assert recovered.status == "finished" and recovered.steps == 8
        assert store.run(recovered.run_id)["status"] == "finished"


def test_a_learning_rate_that_diverges_at_once_keeps_no_checkpoint(tmp_path, model_dir):
    events = Recorder()
    result = run(tiny_config(tmp_path, model_dir, steps=5, checkpoint_every=1, lr=1e10, schedule="constant"),
                 listener=events)
    assert result.status == "failed" and result.steps == 0
    failure = events.of(FailedEvent)[-1]
    assert "the adapter's largest weight" in failure.message and "at step 1" in failure.message
    assert "start the run again" in failure.fix
    assert not (result.output_dir / "checkpoints").exists()


# ---- a full disk while saving -----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    ENOSPC,
    # What torch itself raises when its zip writer meets a full disk.
    RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file "
                 "data/0: file write failed"),
], ids=["oserror", "torch-writer"])
def test_a_full_disk_while_saving_a_checkpoint_names_its_step_and_keeps_the_earlier_ones(
        tmp_path, model_dir, monkeypatch, error):
    config = tiny_config(tmp_path, model_dir, steps=8, checkpoint_every=2)
    save = torch.save
    earlier = {}

    def full_at_step_6(obj, target, *args, **kwargs):
        if ".tmp-step-000006" in str(target):
            earlier.update(saved(tmp_path / "runs"))
            raise error
        return save(obj, target, *args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "save", full_at_step_6)
    events = Recorder()
    with Store.open(tmp_path / "store.db") as store:
        result = run(config, store=store, listener=events)
        row = store.run(result.run_id)
    assert result.status == "failed" and result.steps == 6
    failure = events.of(FailedEvent)[-1]
    assert failure.message.startswith("Could not write the checkpoint of step 6: the disk holding")
    assert "is full" in failure.message and failure.traceback == ""
    assert "Free some disk space" in failure.fix and "step-000004" in failure.fix
    assert row["status"] == "failed" and "checkpoint of step 6" in row["error"]
    # What was saved before is intact, and the half-written checkpoint is gone.
    assert saved(tmp_path / "runs") == earlier and not list((result.output_dir / "checkpoints").glob(".tmp-*"))
    assert sorted(p.name for p in (result.output_dir / "checkpoints").iterdir()) == ["step-000002", "step-000004"]


def test_a_full_disk_while_saving_the_adapter_fails_naming_it_and_keeps_the_checkpoints(
        tmp_path, model_dir, monkeypatch):
    config = tiny_config(tmp_path, model_dir, steps=4, checkpoint_every=2)

    def full(folder: Path, **kwargs):
        raise ENOSPC

    monkeypatch.setattr(training_run, "write_dir_atomically", lambda final, fill, **kwargs: full(final))
    events = Recorder()
    result = run(config, listener=events)
    assert result.status == "failed" and result.adapter_dir is None
    assert events.of(FailedEvent)[-1].message.startswith("Could not write the adapter of step 4: the disk holding")
    assert sorted(p.name for p in (result.output_dir / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    assert not (result.output_dir / "adapter").exists()


def test_a_full_disk_under_the_store_still_ends_the_run_with_its_message(tmp_path, model_dir, monkeypatch):
    config = tiny_config(tmp_path, model_dir, steps=4, checkpoint_every=2)
    full = sqlite3.OperationalError("database or disk is full")

    def no_room(*args, **kwargs):
        raise full

    events = Recorder()
    with Store.open(tmp_path / "store.db") as store:
        monkeypatch.setattr(store, "log_metrics_batch", no_room)
        monkeypatch.setattr(store, "set_status", lambda run_id, status, error=None:
                            no_room() if status != "running" else None)
        result = run(config, store=store, listener=events)
    assert result.status == "failed"
    failure = events.of(FailedEvent)[-1]
    assert failure.message.startswith("The disk filled up after step") and "could not record this" in failure.message
    assert "Free some disk space" in failure.fix
    assert any("could not be stored" in e.message for e in events.of(LogEvent))


# ---- bad input: refused before anything is written ------------------------------------------------------


def assert_refused_before_writing(config, tmp_path, says: list[str]) -> UserError:
    with Store.open(tmp_path / "store.db"):
        pass
    before = rows(tmp_path / "store.db")
    with Store.open(tmp_path / "store.db") as store, pytest.raises(UserError) as refused:
        run(config, store=store, project_file=tmp_path / "project.toml")
    text = f"{refused.value.problem}\n{refused.value.fix}"
    for fragment in says:
        assert fragment in text, text
    assert rows(tmp_path / "store.db") == before  # not even a project row
    assert not (tmp_path / "runs").exists()
    return refused.value


def test_a_model_without_a_tokenizer_adds_no_project_row(tmp_path):
    model = build_tiny_model("llama", tmp_path / "model", with_tokenizer=False)
    assert_refused_before_writing(tiny_config(tmp_path, model), tmp_path, ["has no tokenizer"])


def test_corrupt_weights_add_no_project_row(tmp_path):
    model = build_tiny_model("llama", tmp_path / "model")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_refused_before_writing(tiny_config(tmp_path, model), tmp_path, ["Could not load the weights"])


def test_nan_in_the_models_weights_is_named_as_such(tmp_path):
    model_dir = build_tiny_model("llama", tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(model_dir)
    refused = assert_refused_before_writing(tiny_config(tmp_path, model_dir), tmp_path,
                                            ["hold NaN", "layers.0.mlp.down_proj.weight"])
    assert "learning rate does not help" in refused.fix


def test_a_missing_relative_data_path_says_where_relative_paths_start(tmp_path, model_dir):
    config = tiny_config(tmp_path, model_dir)
    config.data["forget"].path = "data/missing.jsonl"
    assert_refused_before_writing(config, tmp_path, ["[data.forget] does not exist",
                                                     f"relative paths start next to the project file, in {tmp_path}"])


def test_a_hub_name_without_the_network_says_how_to_allow_it(tmp_path, model_dir):
    config = tiny_config(tmp_path, model_dir)
    config.model.path = "gpt2"
    refused = assert_refused_before_writing(config, tmp_path, ["'gpt2' is not a folder on this computer",
                                                               "set model.allow_network = true"])
    assert f"load '{tmp_path / 'gpt2'}'" not in refused.fix  # no local folder offered as a hub id


# ---- cancel and stop take effect between forward passes ------------------------------------------------


class TwoPassMethod(TinyMethod):
    """TinyMethod's terms in two groups; it can ask its control to stop (or cancel) between them."""

    name = "tiny_two_pass"
    control: RunControl | None = None
    ask_at: int = 0
    ask: str = "stop"

    def loss_terms(self, context, batch):
        yield {"forget": self._ce(context, batch["forget"])}
        if context.step == self.ask_at and self.control is not None:
            getattr(self.control, "stop_and_save" if self.ask == "stop" else "cancel")()
        yield {"retain": 0.5 * self._ce(context, batch["retain"])}


def two_pass(control: RunControl, ask_at: int, ask: str = "stop") -> type[TwoPassMethod]:
    return type("Asking", (TwoPassMethod,), {"control": control, "ask_at": ask_at, "ask": ask})


def test_a_stop_between_loss_groups_leaves_a_checkpoint_that_resumes_exactly(tmp_path, model_dir):
    straight_folder = tmp_path / "straight"
    straight_folder.mkdir()
    straight = run(tiny_config(straight_folder, model_dir, steps=6, checkpoint_every=10), method=TwoPassMethod)
    control = RunControl()
    stopped = run(tiny_config(tmp_path, model_dir, steps=6, checkpoint_every=10), method=two_pass(control, 4),
                  control=control)
    # Step 4 was cut short after its first forward pass: the run ends as it was after step 3.
    assert stopped.status == "stopped" and stopped.steps == 3
    assert (stopped.output_dir / "checkpoints" / "step-000003" / "state.json").is_file()
    resumed = run(tiny_config(tmp_path, model_dir, steps=6, checkpoint_every=10), method=TwoPassMethod,
                  resume=stopped.output_dir)
    assert resumed.status == "finished" and resumed.steps == 6
    expected, got = (load_file(r.adapter_dir / "adapter_model.safetensors") for r in (straight, resumed))
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_a_cancel_between_loss_groups_ends_the_run_before_the_second_pass(tmp_path, model_dir):
    control = RunControl()
    events = Recorder()
    result = run(tiny_config(tmp_path, model_dir, steps=6), method=two_pass(control, 2, "cancel"), control=control,
                 listener=events)
    assert result.status == "cancelled" and result.steps == 1
    assert events.of(FailedEvent)[-1].message.startswith("Cancelled at step 1")
    assert [e.step for e in events.of(StepEvent)] == [1]


class SamplingMethod(TinyMethod):
    """Prepares by "generating" for a long time, looking for a stop before each token, as ELM's
    consistency sampling and ICU's refinement do; it asks to cancel at its third token."""

    name = "tiny_sampling"
    control: RunControl | None = None
    tokens: int = 0

    def prepare(self, context, batches):
        for token in range(1000):
            context.check_stop()
            SamplingMethod.tokens = token + 1
            if token == 2:
                self.control.cancel()


def test_a_cancel_inside_the_methods_own_generation_ends_it_at_the_next_token(tmp_path, model_dir):
    control = RunControl()
    method = type("Sampling", (SamplingMethod,), {"control": control})
    result = run(tiny_config(tmp_path, model_dir, steps=6), method=method, control=control)
    assert result.status == "cancelled" and result.steps == 0 and SamplingMethod.tokens == 3
    assert TinyMethod.computed == []


class CancelledEvaluation:
    """evaluate_fn that asks ``control`` to end during ``phase`` and then behaves as the evaluation
    does: raises Cancelled at its next check."""

    def __init__(self, control: RunControl, phase: str, ask: str):
        self.control, self.phase, self.ask = control, phase, ask

    def __call__(self, model, tokenizer, phase, out_dir, *, progress=None, should_stop=None):
        if phase == self.phase:
            getattr(self.control, self.ask)()
            if should_stop():
                from unlearn_studio.core.control import Cancelled

                raise Cancelled("evaluation cancelled")
        return {"score": 1.0}


def test_a_stop_during_the_evaluation_before_training_cancels_the_run(tmp_path, model_dir):
    control = RunControl()
    result = run(tiny_config(tmp_path, model_dir, steps=4, suite="fast"), control=control,
                 evaluate_fn=CancelledEvaluation(control, "before", "stop_and_save"))
    assert result.status == "cancelled" and result.steps == 0 and TinyMethod.computed == []


def test_a_cancel_during_the_evaluation_after_training_keeps_the_adapter_without_after_numbers(tmp_path, model_dir):
    control = RunControl()
    events = Recorder()
    with Store.open(tmp_path / "store.db") as store:
        result = run(tiny_config(tmp_path, model_dir, steps=4, suite="fast"), store=store, control=control,
                     listener=events, evaluate_fn=CancelledEvaluation(control, "after", "cancel"))
        assert [e["phase"] for e in store.evaluations(result.run_id)] == ["before"]
        assert store.run(result.run_id)["status"] == "stopped"
    assert result.status == "stopped" and result.steps == 4
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert any("no after-training numbers" in e.message for e in events.of(LogEvent))


def test_a_cancel_while_the_run_is_prepared_writes_nothing(tmp_path, model_dir):
    control = RunControl()
    control.cancel()
    events = Recorder()
    with Store.open(tmp_path / "store.db") as store:
        result = run(tiny_config(tmp_path, model_dir), store=store, control=control, listener=events)
        assert store.projects() == [] and store.runs() == []
    assert (result.status, result.run_id, result.output_dir) == ("cancelled", "", None)
    assert events.of(FailedEvent)[-1].message == "Cancelled before the run started; nothing was written"
    assert not (tmp_path / "runs").exists()


def test_a_cancelled_run_without_a_checkpoint_is_told_to_start_again(tmp_path, model_dir):
    control = RunControl()
    events = Recorder(lambda e: control.cancel() if isinstance(e, StepEvent) and e.step == 2 else None)
    result = run(tiny_config(tmp_path, model_dir, steps=20, checkpoint_every=50), control=control, listener=events)
    failure = events.of(FailedEvent)[-1]
    assert result.status == "cancelled" and "--resume" not in failure.fix and "Start the run again" in failure.fix


def test_a_resumed_run_says_from_which_step_its_history_goes_on(crashed_run):
    config, result, store_path = crashed_run
    events = Recorder()
    with Store.open(store_path) as store:
        run(config, store=store, resume=result.output_dir, listener=events)
        history = store.metric_history(result.run_id)
    resumed = events.of(StatusEvent)[0]
    assert (resumed.status, resumed.step) == ("resumed", 4)
    assert [step for step, _ in history["loss/forget"]] == list(range(1, 9))


def test_a_method_that_is_not_prepared_by_its_data_roles_is_refused_before_writing(tmp_path, model_dir):
    class NeedsHoldout(TinyMethod):
        roles = DataRoles(required=("forget", "holdout"))

    config = tiny_config(tmp_path, model_dir)
    assert_refused_before_writing_with(config, NeedsHoldout, tmp_path, "holdout")


def assert_refused_before_writing_with(config, method, tmp_path, says: str) -> None:
    with Store.open(tmp_path / "store.db") as store, pytest.raises(UserError, match=says):
        run(config, method=method, store=store, project_file=tmp_path / "project.toml")
    with Store.open(tmp_path / "store.db", readonly=True) as store:
        assert store.projects() == []
    assert not (tmp_path / "runs").exists()


def test_the_checkpoint_keeps_its_config_inputs_and_health(crashed_run):
    _, result, _ = crashed_run
    state = json.loads((result.output_dir / "checkpoints" / "step-000004" / "state.json").read_text())
    assert state["config"]["lora"]["r"] == 4 and set(state["inputs"]) == {"data.forget", "data.retain", "model"}
    assert set(state["health"]) == {"loss", "grad_norm", "weight_max"} and state["health"]["weight_max"] < 1e4
