"""Whether each role's prompt template fits its rows and the model, with the template that fixes it
(issue 17, item 3; issue 15: "auto" picks the demo tokenizer's chat template, the model learned qa)."""

from unlearn_studio.core.methods.presets import apply_preset
from unlearn_studio.core.paths import demo_project, projects_dir
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.template_check import check_role, check_templates


def test_the_shipped_projects_templates_fit():
    for name in ("demo.toml", "elm_demo.toml", "sku_demo.toml", "icu_demo.toml"):
        assert check_templates(RunConfig.load(projects_dir() / name)) == [], name


def test_auto_on_the_demo_model_warns_that_it_learned_the_qa_template():
    config = RunConfig.load(demo_project())
    config.data["forget"].template = "auto"
    advice = check_templates(config)
    assert [a.role for a in advice] == ["forget"] and advice[0].template == "qa"
    assert "learned" in advice[0].title and "--template" not in advice[0].detail  # the app's words


def test_a_template_that_cannot_write_the_rows_is_fixed_by_raw():
    config = apply_preset(RunConfig.load(demo_project()), "elm", "demo").config
    config.data["forget"].template = "qa"  # the saga's passages are plain text
    advice = check_role(config, "forget")
    assert advice is not None and advice.template == "raw" and "plain text" in advice.detail
    config.data["forget"].template = advice.template  # the one-click fix
    assert check_role(config, "forget") is None
