"""The installed `unlearn-studio` command on the demo and on bad input (exit 2, one clear message)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_studio.core.paths import demo_data_dir, demo_model_dir, demo_project
from unlearn_studio.core.project.store import Store

EXE = Path(sys.executable).with_name("unlearn-studio")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def assert_bad_input(result: subprocess.CompletedProcess, *names: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "What to do:" in result.stderr
    for name in names:
        assert name in result.stderr, (name, result.stderr)


def test_the_command_line_parser_loads_no_ml_library():
    """Every command builds the whole parser: none of the commands' modules may import torch & co."""
    probe = ("import sys; from unlearn_studio.core.cli.main import build_parser; build_parser(); "
             "print(sorted(m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_info_on_the_demo_model():
    result = cli("info", str(demo_model_dir()))
    assert result.returncode == 0, result.stderr
    assert "LlamaForCausalLM" in result.stdout
    for module in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert module in result.stdout


def test_info_json_reports_layers_and_targets():
    result = cli("info", str(demo_model_dir()), "--json", "--layers", "2-3")
    facts = json.loads(result.stdout)
    assert facts["n_layers"] == 4 and facts["selected_layers"] == [2, 3]
    names = [name for role_names in facts["targets"].values() for name in role_names]
    assert len(names) == 2 * 7
    assert all(".layers.2." in name or ".layers.3." in name for name in names)


def test_data_check_prints_report_preview_and_decoded_batch():
    result = cli("data", "check", str(demo_data_dir() / "forget10.jsonl"), "--role", "forget", "--template", "qa")
    assert result.returncode == 0, result.stderr
    assert "### Question:" in result.stdout  # the decoded batch, prompt and answer
    assert "«" in result.stdout  # the answer span is marked


def test_check_registers_a_valid_project_in_the_store(tmp_path):
    store = tmp_path / "store.db"
    result = cli("check", str(demo_project()), "--store", str(store))
    assert result.returncode == 0, result.stderr
    with Store.open(store, readonly=True) as opened:
        assert [p["path"] for p in opened.projects()] == [str(demo_project())]


@pytest.fixture
def model_without(tmp_path):
    def make(*removed: str) -> Path:
        folder = tmp_path / "model"
        shutil.copytree(demo_model_dir(), folder)
        for name in removed:
            (folder / name).unlink()
        return folder

    return make


def test_missing_model_folder(tmp_path):
    assert_bad_input(cli("info", str(tmp_path / "nowhere")), "nowhere")


def test_model_folder_without_config(model_without):
    folder = model_without("config.json")
    assert_bad_input(cli("info", str(folder)), "config.json")


def test_unsupported_architecture(model_without):
    folder = model_without()
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "not_a_model"
    (folder / "config.json").write_text(json.dumps(config))
    assert_bad_input(cli("info", str(folder)), "not_a_model")


def test_missing_tokenizer(model_without, tmp_path):
    folder = model_without("tokenizer.json", "tokenizer_config.json")
    project = tmp_path / "p.toml"
    project.write_text(f'name = "p"\n[model]\npath = "{folder}"\n[data.forget]\npath = "demo:forget10.jsonl"\n')
    result = cli("data", "check", str(demo_data_dir() / "forget10.jsonl"), "--role", "forget",
                 "--tokenizer", str(folder))
    assert_bad_input(result, str(folder))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_malformed_jsonl_line(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", b'{"question": "a", "answer": "b"}\n{"question": "c", \n')
    assert_bad_input(cli("data", "check", str(bad), "--role", "forget"), "bad.jsonl", "2")


def test_empty_data_file(tmp_path):
    empty = _write(tmp_path / "empty.jsonl", b"")
    assert_bad_input(cli("data", "check", str(empty), "--role", "forget"), "empty.jsonl")


def test_missing_mapped_column(tmp_path):
    data = _write(tmp_path / "qa.jsonl", b'{"question": "a", "answer": "b"}\n')
    result = cli("data", "check", str(data), "--role", "forget", "--column", "answer=reply")
    assert_bad_input(result, "reply", "qa.jsonl")


def test_non_utf8_file(tmp_path):
    data = _write(tmp_path / "latin.jsonl", '{"question": "café?", "answer": "crème"}\n'.encode("latin-1"))
    assert_bad_input(cli("data", "check", str(data), "--role", "forget"), "latin.jsonl", "UTF-8")


def test_toml_unknown_key_and_wrong_type(tmp_path):
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('name = "p"\n[training]\nbatch = 4\n')
    assert_bad_input(cli("check", str(unknown)), "training.batch", "training.batch_size")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('name = "p"\n[training]\nbatch_size = "8"\n')
    assert_bad_input(cli("check", str(wrong)), "training.batch_size")


def test_store_read_only_or_locked(tmp_path):
    not_a_db = _write(tmp_path / "store.db", b"this is not a database, it is a note\n")
    assert_bad_input(cli("check", str(demo_project()), "--store", str(not_a_db)), str(not_a_db))
    assert not_a_db.read_bytes() == b"this is not a database, it is a note\n"

    locked = tmp_path / "locked.db"
    with Store.open(locked) as holder:  # this process is the one writer
        assert_bad_input(cli("check", str(demo_project()), "--store", str(locked)), str(locked))
        assert holder.projects() == []


def test_bad_project_writes_nothing_to_the_store(tmp_path):
    store = tmp_path / "store.db"
    with Store.open(store):
        pass
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "p"\n[data.forget]\npath = "missing.jsonl"\n')
    assert_bad_input(cli("check", str(broken), "--store", str(store)), "missing.jsonl")
    with Store.open(store, readonly=True) as opened:
        assert opened.projects() == []


def test_demo_build_refuses_a_folder_it_did_not_write(tmp_path):
    """The defect: `demo build --out DIR` deleted DIR (a thesis and a sub-folder) once the build
    succeeded. Now it refuses at once, before any training, and DIR is untouched."""
    thesis = tmp_path / "thesis"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "thesis.txt").write_text("mine")
    (thesis / "chapters" / "one.txt").write_text("mine too")
    for extra in ((), ("--overwrite",)):
        result = cli("demo", "build", "--seed", "5", "--out", str(thesis), *extra)
        assert result.returncode == 2, result.stdout + result.stderr
        assert str(thesis) in result.stderr and "thesis.txt" in result.stderr and "chapters/" in result.stderr
    assert (thesis / "thesis.txt").read_text() == "mine" and (thesis / "chapters" / "one.txt").read_text() == "mine too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]
