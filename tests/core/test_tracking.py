"""Experiment tracking: TensorBoard event files in the run's folder with the step numbers and the
configuration, and trackers the project turns on but the machine lacks refused up front."""

import pytest

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run import tracking
from unlearn_studio.core.run.tracking import check_trackers, flat_config, start_trackers

needs_tensorboard = pytest.mark.skipif(not tracking.installed("tensorboard"), reason="tensorboard is not installed")


def config(**tracking_settings) -> RunConfig:
    made = RunConfig(name="tracked")
    for key, value in tracking_settings.items():
        setattr(made.tracking, key, value)
    return made


@needs_tensorboard
def test_tensorboard_gets_each_steps_numbers_in_the_run_folder(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # optional package

    lines = []
    trackers = start_trackers(config(), tmp_path, "run1", log=lambda level, line: lines.append(line))
    for step, loss in ((1, 1.0), (2, 0.5), (3, 0.25)):
        trackers.log(step, {"loss/total": loss, "lr": 1e-4})
    trackers.finish()
    events = EventAccumulator(str(tmp_path / "logs" / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss/total")] == [(1, 1.0), (2, 0.5), (3, 0.25)]
    assert len(lines) == 1 and f'tensorboard --logdir "{tmp_path / "logs"}"' in lines[0]


def test_only_the_main_process_tracks(tmp_path):
    trackers = start_trackers(config(), tmp_path, "run1", main_process=False)
    assert trackers.trackers == [] and not (tmp_path / "logs").exists()


def test_tensorboard_missing_costs_only_its_curves_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "installed", lambda name: False)
    trackers = start_trackers(config(), tmp_path, "run1")
    assert trackers.trackers == [] and "not installed" in trackers.lines[0] and "[tensorboard]" in trackers.lines[0]


def test_turned_off_means_no_folder(tmp_path):
    trackers = start_trackers(config(tensorboard=False), tmp_path, "run1")
    assert trackers.trackers == [] and trackers.lines == [] and not (tmp_path / "logs").exists()


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_tracker_turned_on_but_not_installed_is_refused(name, monkeypatch):
    monkeypatch.setattr(tracking, "installed", lambda package: False)
    with pytest.raises(UserError) as caught:
        check_trackers(config(**{name: True}))
    assert f"tracking.{name} is on" in caught.value.problem and f"tracking.{name} = false" in caught.value.fix


def test_the_configuration_is_stored_flat():
    values = flat_config(config())
    assert values["training.batch_size"] == 4 and values["tracking.tensorboard"] is True
    assert values["lora.roles"] == '["auto"]'
    assert all(isinstance(v, (bool, int, float, str)) for v in values.values())
