"""Project files saved from the app into another folder (the presets are in test_presets.py)."""

from unlearn_studio.core.project.config import DataSource, RunConfig
from unlearn_studio.core.project.files import rebased, suggest_project_path


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
