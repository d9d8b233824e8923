"""Presets are whole recipes (issue 17, item 3): the paper's values, the demo project's settings and
data, a conservative variant; which preset a config's settings are; whether its data shipped."""

import pytest

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.presets import (
    apply_preset,
    demo_project_for,
    matching_preset,
    paper_project_for,
    shipped_data,
)
from unlearn_studio.core.paths import demo_project, projects_dir
from unlearn_studio.core.project.config import DataSource, RunConfig


def demo() -> RunConfig:
    return RunConfig.load(demo_project())


def test_a_demo_preset_brings_its_data_roles_and_templates():
    """The issue's case: ELM's demo settings on the persons project used to keep the QA data."""
    result = apply_preset(demo(), "elm", "demo")
    source = RunConfig.load(projects_dir() / "elm_demo.toml")
    assert result.config.method.params["concept"] == source.method.params["concept"]
    assert result.config.data == source.data and result.config.data["forget"].template == "raw"
    assert result.config.evaluation == source.evaluation
    assert result.data_from == projects_dir() / "elm_demo.toml" and "data roles and templates" in result.note
    kept = apply_preset(demo(), "elm", "demo", keep_data=True)
    assert kept.config.data == demo().data and kept.data_from is None
    assert kept.config.lora == source.lora  # the settings come all the same


def test_paper_presets_hold_the_papers_values():
    rmu = apply_preset(demo(), "rmu", "paper").config
    assert rmu.optimizer.lr == 5e-5 and rmu.method.params["alpha"] == 1200.0  # WMDP's Zephyr run
    assert rmu.training.max_steps == 150 and rmu.training.batch_size == 4
    npo = apply_preset(demo(), "npo", "paper").config
    assert (npo.optimizer.lr, npo.training.epochs, npo.training.max_steps, npo.method.params["beta"]) == (1e-5, 10.0,
                                                                                                        None, 0.1)
    elm = apply_preset(demo(), "elm", "paper")
    assert paper_project_for("elm") == projects_dir() / "elm.toml" and elm.config.optimizer.lr == 5e-5
    assert elm.config.lora == RunConfig.load(projects_dir() / "elm.toml").lora
    sft = apply_preset(demo(), "sft", "paper")
    assert "declares" in sft.note and sft.data_from is None


def test_demo_and_conservative_presets_of_a_baseline():
    source = RunConfig.load(projects_dir() / "grad_diff.toml")
    assert demo_project_for("grad_diff") == projects_dir() / "grad_diff.toml" and paper_project_for("grad_diff") is None
    result = apply_preset(demo(), "grad_diff", "demo")
    assert result.config.optimizer.lr == source.optimizer.lr and result.config.lora == source.lora
    careful = apply_preset(demo(), "grad_diff", "conservative").config
    assert careful.optimizer.lr == pytest.approx(source.optimizer.lr / 2)
    assert careful.training.max_steps == source.training.max_steps // 2
    assert demo().method.name == "rmu"  # the input is not changed


def test_the_preset_a_config_is_or_custom():
    assert matching_preset(demo()) == "demo"  # the demo project is RMU's demo settings
    for preset in ("paper", "demo", "conservative"):
        assert matching_preset(apply_preset(demo(), "npo", preset).config) == preset
    changed = apply_preset(demo(), "npo", "demo").config
    changed.optimizer.lr *= 3
    assert matching_preset(changed) is None
    changed = apply_preset(demo(), "npo", "demo").config
    changed.data["forget"].max_rows = 3  # the data does not decide the preset
    assert matching_preset(changed) == "demo"


def test_data_a_person_chose_is_told_apart_from_a_shipped_projects(tmp_path):
    assert shipped_data(demo()) and shipped_data(RunConfig.load(projects_dir() / "elm_demo.toml"))
    mine = demo()
    mine.data["forget"] = DataSource(str(tmp_path / "mine.jsonl"), template="qa")
    assert not shipped_data(mine)


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match="Unknown preset"):
        apply_preset(demo(), "grad_diff", "fastest")
