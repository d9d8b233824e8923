"""The project settings that make a run fit and not fight: quantization, mixed precision, gradient
checkpointing, threads and experiment tracking, read and written like every other setting."""

import pytest

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.checkpoint import Checkpoint
from unlearn_studio.core.run.resume import plan_resume

PROJECT = """
name = "big model"
[model]
quantization = "nf4"
[training]
mixed_precision = "bf16"
gradient_checkpointing = true
threads = 3
[tracking]
tensorboard = false
wandb = true
"""


def test_defaults_leave_everything_to_the_machine():
    config = RunConfig(name="x")
    assert config.model.quantization == "none"
    assert config.training.mixed_precision == "auto" and config.training.threads is None
    assert not config.training.gradient_checkpointing
    assert config.tracking.tensorboard and not config.tracking.wandb and not config.tracking.mlflow


def test_the_settings_round_trip_through_toml():
    config = RunConfig.from_toml(PROJECT)
    assert (config.model.quantization, config.training.mixed_precision, config.training.threads) == ("nf4", "bf16", 3)
    assert config.training.gradient_checkpointing and config.tracking.wandb and not config.tracking.tensorboard
    assert RunConfig.from_toml(config.to_toml()) == config


def test_threads_left_unset_stay_out_of_the_file():
    assert "threads" not in RunConfig(name="x").to_toml()


def test_zero_threads_are_refused():
    with pytest.raises(UserError, match="training.threads"):
        RunConfig.from_toml('name = "x"\n[training]\nthreads = 0\n')


def test_an_unknown_quantization_is_refused_with_the_choices():
    with pytest.raises(UserError) as caught:
        RunConfig.from_toml('name = "x"\n[model]\nquantization = "nf5"\n')
    assert "'nf4'" in caught.value.fix and "model.quantization" in caught.value.problem


def test_an_unknown_tracker_key_is_named():
    with pytest.raises(UserError, match="tracking.tensorbord"):
        RunConfig.from_toml('name = "x"\n[tracking]\ntensorbord = true\n')


def old_checkpoint(tmp_path, config: RunConfig) -> Checkpoint:
    """A checkpoint written before these settings existed: its configuration lacks them."""
    kept = config.to_dict()
    del kept["tracking"], kept["model"]["quantization"], kept["training"]["gradient_checkpointing"]
    kept["training"]["mixed_precision"] = "no"  # the old default
    return Checkpoint(tmp_path / "checkpoints" / "step-000010", {"step": 10, "run_id": "r", "streams": {},
                                                                   "config": kept})


def test_a_checkpoint_from_before_these_settings_still_resumes(tmp_path):
    config = RunConfig(name="x")
    plan = plan_resume(config, old_checkpoint(tmp_path, config), {})
    assert set(plan.changed) <= {"training.mixed_precision"} and plan.describe_changes() == ""


def test_resume_may_change_how_steps_run_but_not_the_quantized_base(tmp_path):
    config = RunConfig(name="x")
    checkpoint = old_checkpoint(tmp_path, config)
    faster = RunConfig(name="x")
    faster.training.threads, faster.training.gradient_checkpointing, faster.tracking.tensorboard = 2, True, False
    assert plan_resume(faster, checkpoint, {}).changed.keys() >= {"training.threads", "training.gradient_checkpointing"}
    quantized = RunConfig(name="x")
    quantized.model.quantization = "nf4"
    with pytest.raises(UserError, match="model.quantization"):
        plan_resume(quantized, checkpoint, {})
