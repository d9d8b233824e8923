"""A demo project moved onto another demo world: its model, data and reference model are that world's."""

import json
from pathlib import Path

import pytest

from unlearn_studio.core.cli.main import main
from unlearn_studio.core.demo.other_world import on_world, write_project_on_world
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.suite import EvalSuite
from unlearn_studio.core.files import mark_as_own
from unlearn_studio.core.paths import demo_dir
from unlearn_studio.core.project.config import RunConfig

PROJECTS = Path(__file__).resolve().parents[2] / "projects"


@pytest.fixture
def world(tmp_path) -> Path:
    """A folder shaped as `demo build` writes it (its files are the shipped data, its seed 7)."""
    folder = tmp_path / "world7"
    (folder / "data").mkdir(parents=True)
    for name in ("model", "retain_model"):
        (folder / name).mkdir()
    for path in (demo_dir() / "data").glob("*.jsonl"):
        (folder / "data" / path.name).write_bytes(path.read_bytes())
    (folder / "data" / "manifest.json").write_text(json.dumps({"seed": 7}), encoding="utf-8")
    mark_as_own(folder, "demo")
    return folder


@pytest.mark.parametrize("name", sorted(p.name for p in PROJECTS.glob("*.toml")))
def test_every_shipped_project_moves_wholly_onto_the_world(name, world):
    config = RunConfig.load(PROJECTS / name)
    moved = on_world(config, world)
    paths = [moved.model.path, *(s.path for role, top in moved.data.items() for s in top.sources(role).values()),
             *(s.path for s in moved.evaluation.sets.values())]
    assert all(p.startswith(str(world.resolve())) for p in paths), paths
    suite = EvalSuite.for_config(moved)
    assert all(str(s.path).startswith(str(world.resolve())) for s in suite.sets)
    if config.evaluation.reference_model == "demo":
        assert suite.reference_model == world.resolve() / "retain_model"
    # The recipe itself is untouched.
    assert (moved.method, moved.lora, moved.optimizer, moved.training) == (
        config.method, config.lora, config.optimizer, config.training)


def test_the_written_project_loads_and_says_where_it_came_from(world, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "icu_on_world7.toml"
    assert main(["demo", "project", str(PROJECTS / "icu_demo.toml"), "--world", str(world), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "(seed 7)" in text.splitlines()[0]
    loaded = RunConfig.load(out)
    assert loaded.evaluation.reference_model == str(world.resolve() / "retain_model")
    assert loaded.data["forget"].path == str(world.resolve() / "data" / "secrets_forget.jsonl")
    assert "unlearn-studio run" in capsys.readouterr().out
    with pytest.raises(UserError, match="already exists"):
        write_project_on_world(PROJECTS / "icu_demo.toml", world, out)
    assert out.read_text(encoding="utf-8") == text


def test_a_folder_that_is_not_a_demo_world_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match="is not a demo world"):
        on_world(RunConfig.load(PROJECTS / "demo.toml"), tmp_path)


def test_a_project_without_the_demo_is_refused(world, tmp_path):
    (tmp_path / "mine.jsonl").write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    config = RunConfig.from_toml('name = "mine"\n[model]\npath = "some/model"\n[data.forget]\npath = "mine.jsonl"\n',
                                 base_dir=tmp_path)
    with pytest.raises(UserError, match="uses nothing of the demo"):
        on_world(config, world)
