"""Presets for a method, and project files saved from the app into another folder."""

import pytest

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.presets import apply_preset, demo_project_for
from unlearn_studio.core.paths import demo_project, projects_dir
from unlearn_studio.core.project.config import DataSource, RunConfig
from unlearn_studio.core.project.files import rebased, suggest_project_path


def demo():
    return RunConfig.load(demo_project())


def test_paper_preset_sets_declared_defaults_and_keeps_training():
    config = demo()
    config.method.params = {"steering_scale": 9.0}
    result = apply_preset(config, "npo", "paper")
    assert result.config.method.name == "npo"
    assert result.config.method.params == {"beta": 0.1, "retain_weight": 1.0}
    assert result.config.optimizer.lr == config.optimizer.lr and result.config.training == config.training
    assert config.method.name == "rmu"  # the input is not changed


def test_demo_preset_takes_the_method_project_and_conservative_halves_lr_and_steps():
    source = RunConfig.load(projects_dir() / "grad_diff.toml")
    assert demo_project_for("grad_diff") == projects_dir() / "grad_diff.toml"
    result = apply_preset(demo(), "grad_diff", "demo")
    assert result.config.optimizer.lr == source.optimizer.lr and result.config.lora == source.lora
    assert result.config.data == demo().data and "grad_diff.toml" in result.note
    careful = apply_preset(demo(), "grad_diff", "conservative").config
    assert careful.optimizer.lr == pytest.approx(source.optimizer.lr / 2)
    assert careful.training.max_steps == source.training.max_steps // 2


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match="Unknown preset"):
        apply_preset(demo(), "grad_diff", "fastest")


def test_rebased_paths_name_the_same_files_from_another_folder(tmp_path):
    (tmp_path / "a").mkdir()
    data = tmp_path / "a" / "forget.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    config = RunConfig(name="Mine", data={"forget": DataSource("forget.jsonl"), "retain": DataSource("demo:retain.jsonl")},
                       base_dir=tmp_path / "a")
    moved = rebased(config, tmp_path / "b")
    assert moved.data["forget"].path == "../a/forget.jsonl" and moved.data["retain"].path == "demo:retain.jsonl"
    assert moved.resolve_path(moved.data["forget"].path) == data.resolve()
    assert moved.output.dir == "runs"  # runs go beside the saved project


def test_suggested_project_path_never_overwrites(tmp_path):
    config = RunConfig(name="GradDiff: my run", base_dir=tmp_path)
    first = suggest_project_path(config)
    assert first == tmp_path / "graddiff-my-run.toml"
    first.write_text("", encoding="utf-8")
    assert suggest_project_path(config) == tmp_path / "graddiff-my-run-2.toml"
