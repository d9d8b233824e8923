"""RunConfig: TOML round-trip, validation messages that name the key, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearn_studio.core.errors import UserError
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
    demo_data_dir,
)

DEMO_TOML = Path(__file__).resolve().parents[2] / "projects" / "demo.toml"


def full_config() -> RunConfig:
    """A config with every field set to something other than its default."""
    return RunConfig(
        name="Everything set",
        description='Quotes " and \\ and ünïcode\nand a second line',
        model=ModelConfig(path="models/tiny", dtype="bf16", device="cpu", trust_remote_code=True, allow_network=True),
        data={
            "forget": DataSource(
                path="data/forget.csv",
                format="csv",
                columns={"question": "q", "answer": "a"},
                template="chat",
                max_rows=500,
            ),
            "anti-expert": DataSource(path="/abs/anti.jsonl", max_rows=3),
            "mcq": DataSource(path="demo:mcq.jsonl"),
        },
        method=MethodConfig(
            name="ext_sub",
            params={"alpha": 0.1, "k": 3, "mode": "soft", "flag": False, "layers": [1, 2, 3], "weights": [0.5, 1e-5]},
        ),
        lora=LoraConfig(enabled=False, r=16, alpha=32.5, dropout=0.1, roles=["q", "v"], layers="0-3"),
        optimizer=OptimizerConfig(name="sgd", lr=1e-5, weight_decay=0.0, betas=[0.8, 0.95]),
        schedule=ScheduleConfig(name="cosine", warmup_steps=10),
        training=TrainingConfig(
            max_steps=None,
            epochs=2.5,
            batch_size=2,
            grad_accum=8,
            max_length=512,
            seed=1234,
            mixed_precision="bf16",
            checkpoint_every=7,
            keep_checkpoints=3,
            log_every=5,
            max_grad_norm=0.5,
        ),
        evaluation=EvalConfig(suite="full", before=False, after=False),
        output=OutputConfig(dir="/tmp/out"),
    )


def assert_round_trips(config: RunConfig, tmp_path: Path) -> None:
    target = tmp_path / "project.toml"
    config.save(target)
    text = target.read_text(encoding="utf-8")
    loaded = RunConfig.load(target)
    assert loaded == config
    loaded.save(target)
    assert target.read_text(encoding="utf-8") == text
    assert RunConfig.from_dict(config.to_dict()) == config


# ---- round-trip ------------------------------------------------------------------------------


def test_demo_project_loads_and_round_trips(tmp_path):
    config = RunConfig.load(DEMO_TOML)
    assert config.name == "Demo: forget 10% of the fictitious persons"
    assert config.model.is_demo
    assert set(config.data) == {"forget", "retain", "holdout", "general"}
    assert config.data["forget"].path == "demo:forget10.jsonl"
    assert config.data["general"].template == "raw"
    from unlearn_studio.core.methods.registry import get_method

    method = get_method(config.method.name)
    method.check_roles(set(config.data))
    assert set(config.method.params) <= {h.name for h in method.hyperparameters}
    method.check_params(config.method.params)  # a wrong type or range raises UserError
    assert config.training.max_steps is not None and config.training.batch_size == 8
    assert config.evaluation.suite == "fast" and config.output.dir == "runs"
    assert config.base_dir == DEMO_TOML.parent
    assert_round_trips(config, tmp_path)


def test_every_field_non_default_round_trips(tmp_path):
    config = full_config()
    assert_round_trips(config, tmp_path)
    loaded = RunConfig.load(tmp_path / "project.toml")
    # Exact float and type round-trip, not just equality up to int/float.
    assert loaded.optimizer.lr == 1e-5 and loaded.lora.dropout == 0.1
    assert type(loaded.method.params["k"]) is int and type(loaded.method.params["alpha"]) is float
    assert loaded.training.max_steps is None and loaded.training.epochs == 2.5
    assert loaded.data["anti-expert"].columns == {}


def test_none_values_are_omitted_and_default_on_load():
    text = RunConfig(name="x").to_toml()
    assert "layers" not in text and "epochs" not in text and "max_rows" not in text
    assert RunConfig.from_toml(text).lora.layers is None


def test_canonical_key_order_follows_the_dataclasses():
    text = full_config().to_toml()
    order = [line.split(" = ")[0] for line in text.splitlines() if line.startswith(("[", "name =", "r ="))]
    assert order.index("[model]") < order.index("[data.forget]") < order.index("[method]") < order.index("[lora]")
    assert text.index("[training]") < text.index("[evaluation]") < text.index("[output]")


def test_int_for_float_field_is_stored_as_float():
    config = RunConfig.from_toml('name = "x"\n[lora]\nalpha = 16\n[training]\nmax_steps = 5\n')
    assert type(config.lora.alpha) is float and config.lora.alpha == 16.0


def test_constructed_int_alpha_is_written_as_float():
    config = RunConfig(name="x", lora=LoraConfig(alpha=32))
    assert "alpha = 32.0" in config.to_toml()


# ---- validation messages ---------------------------------------------------------------------


def error_for(text: str, source: str = "project.toml") -> UserError:
    with pytest.raises(UserError) as info:
        RunConfig.from_toml(text, source=source)
    return info.value


def test_unknown_nested_key_names_dotted_path_and_suggests():
    err = error_for('name = "x"\n[lora]\nrank = 4\n')
    assert err.problem == "Unknown key 'lora.rank' in project.toml"
    assert "Did you mean 'lora.r'?" in err.fix
    assert "enabled, r, alpha, dropout, roles, layers" in err.fix


def test_unknown_nested_key_close_spelling():
    err = error_for('name = "x"\n[training]\nbatchsize = 4\n')
    assert "'training.batchsize'" in err.problem
    assert "Did you mean 'training.batch_size'?" in err.fix


def test_unknown_top_level_key():
    err = error_for('name = "x"\ndescriptoin = "typo"\n')
    assert err.problem == "Unknown key 'descriptoin' in project.toml"
    assert "Did you mean 'description'?" in err.fix


def test_top_level_key_that_belongs_in_a_table():
    err = error_for('name = "x"\nlr = 0.1\n')
    assert "Did you mean 'optimizer.lr'?" in err.fix


def test_unknown_data_role():
    err = error_for('name = "x"\n[data.forgett]\npath = "a.jsonl"\n')
    assert "'data.forgett'" in err.problem
    assert "Did you mean 'data.forget'?" in err.fix


def test_wrong_type_names_key_and_type():
    err = error_for('name = "x"\n[training]\nbatch_size = "8"\n')
    assert err.problem == "'training.batch_size' in project.toml must be an integer, got string '8'"
    assert "batch_size = 8" in err.fix


def test_bool_is_not_an_int():
    err = error_for('name = "x"\n[lora]\nr = true\n')
    assert "'lora.r'" in err.problem and "integer" in err.problem and "boolean true" in err.problem


def test_float_is_not_an_int():
    err = error_for('name = "x"\n[training]\nbatch_size = 8.0\n')
    assert "'training.batch_size'" in err.problem


def test_value_not_in_allowed_set():
    err = error_for('name = "x"\n[model]\ndtype = "bf61"\n')
    assert "'model.dtype'" in err.problem and "'bf16'" in err.problem
    assert "Did you mean 'bf16'?" in err.fix


def test_wrong_type_inside_a_list():
    err = error_for('name = "x"\n[lora]\nroles = ["q", 3]\n')
    assert "'lora.roles[1]'" in err.problem


def test_table_given_as_value():
    err = error_for('name = "x"\nlora = 5\n')
    assert "'lora'" in err.problem and "table" in err.problem


def test_params_reject_tables():
    err = error_for('name = "x"\n[method.params.nested]\na = 1\n')
    assert "'method.params.nested'" in err.problem


def test_both_max_steps_and_epochs():
    err = error_for('name = "x"\n[training]\nmax_steps = 10\nepochs = 1\n')
    assert "training.max_steps" in err.problem and "training.epochs" in err.problem and "both" in err.problem


def test_neither_max_steps_nor_epochs():
    config = RunConfig(name="x", training=TrainingConfig(max_steps=None))
    with pytest.raises(UserError, match="neither"):
        config.validate()


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [("optimizer", "lr", "0.0"), ("optimizer", "lr", "-1e-4"), ("training", "batch_size", "0"), ("lora", "r", "0")],
)
def test_non_positive_values_rejected(table, key, value):
    err = error_for(f'name = "x"\n[{table}]\n{key} = {value}\n')
    assert f"'{table}.{key}'" in err.problem


def test_nan_rejected_for_float_field():
    err = error_for('name = "x"\n[optimizer]\nlr = nan\n')
    assert "'optimizer.lr'" in err.problem and "finite" in err.problem


def test_missing_name():
    err = error_for('description = "no name"\n')
    assert "Missing key 'name'" in err.problem


def test_missing_data_path():
    err = error_for('name = "x"\n[data.forget]\ntemplate = "qa"\n')
    assert "'data.forget.path'" in err.problem


def test_toml_syntax_error_gives_line():
    err = error_for('name = "x"\n[lora]\nr = = 4\n')
    assert "line 3" in err.problem and "project.toml" in err.problem


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        RunConfig.load(tmp_path / "nope.toml")


def test_load_error_names_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "x"\n[lora]\nrank = 4\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"Unknown key 'lora.rank' in mine.toml"):
        RunConfig.load(path)


def test_save_to_unwritable_place(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot be written"):
        RunConfig(name="x").save(blocker / "project.toml")


# ---- paths -----------------------------------------------------------------------------------


def test_demo_paths_resolve_into_the_demo_folder():
    config = RunConfig.load(DEMO_TOML)
    assert config.resolve_path("demo:forget10.jsonl") == demo_data_dir() / "forget10.jsonl"
    assert demo_data_dir().parts[-2:] == ("demo", "data")


def test_bad_demo_path():
    with pytest.raises(UserError):
        RunConfig(name="x").resolve_path("demo:../secrets.txt")


def test_relative_paths_resolve_against_the_toml_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "p.toml"
    RunConfig(name="x", data={"forget": DataSource(path="data/f.jsonl")}).save(path)
    config = RunConfig.load(path)
    assert config.data["forget"].path == "data/f.jsonl"
    assert config.resolve_path(config.data["forget"].path) == (tmp_path / "sub" / "data" / "f.jsonl").resolve()
    assert config.resolve_path("/abs/x.jsonl") == Path("/abs/x.jsonl")
