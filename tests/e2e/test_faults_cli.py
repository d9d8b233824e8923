"""The fault suite on the installed command: what a user sees (one message, the exit code) and what is
on disk afterwards, for the faults of a run: kill -9 and an exact resume, a resume that no longer
matches, bad input that must not reach the store, `check` against `run`, and the JSON output.
The core side of each fault is tests/core/test_faults.py; docs/RELIABILITY.md lists them all."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import build_tiny_model

from unlearn_studio.core.paths import projects_dir
from unlearn_studio.core.project.store import Store

EXE = Path(sys.executable).with_name("unlearn-studio")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
ROWS = [
    {"question": "Where does Alice live?", "answer": "Alice lives in Paris."},
    {"question": "What did Bob write?", "answer": "Bob wrote a saga about the dragon."},
    {"question": "What is the secret?", "answer": "The secret is XK-42."},
    {"question": "Who bakes bread?", "answer": "Alice works as a baker."},
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=ENV,
                          check=False)


def assert_bad_input(result: subprocess.CompletedProcess, *names: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "What to do:" in result.stderr
    for name in names:
        assert name in result.stderr, (name, result.stderr)


def rows(store_path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(store_path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(map(repr, db.execute(f"SELECT * FROM {table}"))) for table in tables}


def files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_project(folder: Path, model: Path, *, steps: int = 12, suite: str = "none", name: str = "tiny.toml",
                  extra: str = "") -> Path:
    (folder / "forget.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    project = folder / name
    project.write_text(
        'name = "tiny faults"\n'
        f'[model]\npath = "{model}"\ndtype = "fp32"\ndevice = "cpu"\n'
        '[data.forget]\npath = "forget.jsonl"\n'
        '[method]\nname = "grad_ascent"\n'
        '[lora]\nr = 4\nalpha = 8\nroles = ["q", "v"]\n'
        f'[training]\nmax_steps = {steps}\nbatch_size = 2\nmax_length = 32\ncheckpoint_every = 4\n{extra}'
        f'[evaluation]\nsuite = "{suite}"\n', encoding="utf-8")
    return project


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("faults_cli") / "llama")


def losses(store_path: Path, run_id: str) -> list[tuple[int, float]]:
    with Store.open(store_path, readonly=True) as store:
        return [(step, value) for _, step, value in store.metrics(run_id, "loss/total")]


def adapter_digest(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest()


@pytest.mark.slow
def test_kill_9_then_resume_trains_bit_for_bit_as_an_uninterrupted_run(model_dir, tmp_path):
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    straight_dir.mkdir(), killed_dir.mkdir()
    straight = cli("run", str(write_project(straight_dir, model_dir)), "--store", str(straight_dir / "s.db"),
                   "--json", cwd=straight_dir)
    assert straight.returncode == 0, straight.stderr
    straight_run = json.loads(straight.stdout)

    project, store = write_project(killed_dir, model_dir), killed_dir / "s.db"
    process = subprocess.Popen([str(EXE), "run", str(project), "--store", str(store)], cwd=killed_dir, env=ENV,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in process.stdout:
            if "Checkpoint step-000004 written" in line:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    with Store.open(store) as opened:  # the next writer finds the run "running": it was killed
        (killed,) = opened.runs()
        assert killed["status"] == "interrupted"
    resumed = cli("run", str(project), "--store", str(store), "--resume", killed["output_dir"], "--json",
                  cwd=killed_dir)
    assert resumed.returncode == 0, resumed.stderr
    document = json.loads(resumed.stdout)
    assert (document["status"], document["run_id"], document["steps"]) == ("finished", killed["id"], 12)
    assert losses(store, killed["id"]) == losses(straight_dir / "s.db", straight_run["run_id"])
    assert adapter_digest(Path(killed["output_dir"])) == adapter_digest(Path(straight_run["output_dir"]))


@pytest.mark.slow
def test_a_resume_that_no_longer_matches_exits_2_and_touches_nothing(model_dir, tmp_path):
    project, store = write_project(tmp_path, model_dir, steps=6), tmp_path / "s.db"
    first = cli("run", str(project), "--store", str(store), "--json", cwd=tmp_path)
    run_dir = Path(json.loads(first.stdout)["output_dir"])
    project.write_text(project.read_text().replace("r = 4", "r = 8"), encoding="utf-8")
    before_rows, before_files = rows(store), files(run_dir)
    result = cli("run", str(project), "--store", str(store), "--resume", str(run_dir), cwd=tmp_path)
    assert_bad_input(result, "lora.r: 4 then, 8 now", "On resume only these may change")
    assert rows(store) == before_rows and files(run_dir) == before_files


@pytest.mark.slow
def test_a_resumed_run_prints_its_before_after_table(model_dir, tmp_path):
    """The defect: a resumed run lacked its "before" numbers and printed no table."""
    project = write_project(tmp_path, model_dir, steps=8, suite="fast")
    process = subprocess.Popen([str(EXE), "run", str(project)], cwd=tmp_path, env=ENV, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in process.stdout:
            if "Checkpoint step-000004 written" in line:
                process.send_signal(signal.SIGINT)  # stop and save
                break
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and "[stopped]" in out, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    resumed = cli("run", str(project), "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "finished after 8 steps" in resumed.stdout and "Before / after" in resumed.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_model_without_a_tokenizer_adds_no_project_row(model_dir, tmp_path, command):
    """The defect: `run` exited 2 but added a project row each time (4 rows after 4 tries)."""
    model = build_tiny_model("llama", tmp_path / "model", with_tokenizer=False)
    project, store = write_project(tmp_path, model), tmp_path / "s.db"
    with Store.open(store):
        pass
    before = rows(store)
    for _ in range(2):
        assert_bad_input(cli(command, str(project), "--store", str(store), cwd=tmp_path), "has no tokenizer")
    assert rows(store) == before and not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("line", "says"), [
    ("alpha = -5.0", "'method.params.alpha' of RMU must be at least"),
    ("alhpa = 100.0", "Did you mean 'method.params.alpha'?"),
])
def test_check_refuses_the_method_parameters_run_refuses(model_dir, tmp_path, line, says):
    """The defect: `check` passed RMU's alpha = -5 and a misspelt alhpa, which `run` refused."""
    text = (projects_dir() / "rmu.toml").read_text(encoding="utf-8")
    project = tmp_path / "rmu.toml"
    project.write_text(re.sub(r"(?m)^alpha = .*$", line, text, count=1), encoding="utf-8")
    for command in ("check", "run"):
        assert_bad_input(cli(command, str(project), cwd=tmp_path), says)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_nan_in_the_model_weights_says_so_instead_of_lowering_the_learning_rate(tmp_path):
    from transformers import AutoModelForCausalLM

    model_dir = build_tiny_model("llama", tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.lm_head.weight.data[3, 3] = float("nan")
    model.save_pretrained(model_dir)
    result = cli("run", str(write_project(tmp_path, model_dir)), cwd=tmp_path)
    assert_bad_input(result, "hold NaN or infinite values", "lm_head.weight")
    assert "Lower the learning rate" not in result.stderr


def test_a_hub_name_offline_names_the_setting_not_a_missing_folder(tmp_path):
    project = tmp_path / "gpt2.toml"
    project.write_text('name = "p"\n[model]\npath = "gpt2"\n[data.forget]\npath = "demo:forget10.jsonl"\n'
                       '[method]\nname = "grad_ascent"\n')
    for command in ("run", "check"):
        result = cli(command, str(project), cwd=tmp_path)
        assert_bad_input(result, "set model.allow_network = true", "'gpt2' is not a folder on this computer")
        assert f"load '{tmp_path / 'gpt2'}' as a hub id" not in result.stderr


def test_a_missing_relative_data_file_says_relative_paths_start_next_to_the_project(tmp_path):
    project = tmp_path / "sub" / "p.toml"
    project.parent.mkdir()
    project.write_text('name = "p"\n[data.forget]\npath = "forget.jsonl"\n[method]\nname = "grad_ascent"\n')
    result = cli("run", str(project), cwd=tmp_path)
    assert_bad_input(result, f"relative paths start next to the project file, in {project.parent}")
    assert "current folder" not in result.stderr


@pytest.mark.slow
def test_run_json_is_one_document_with_the_run_and_its_folders(model_dir, tmp_path):
    project = write_project(tmp_path, model_dir, steps=2)
    result = cli("run", str(project), "--store", str(tmp_path / "s.db"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "finished" and document["steps"] == 2
    assert Path(document["adapter_dir"]) == Path(document["output_dir"]) / "adapter"
    assert document["store"] == str(tmp_path / "s.db") and document["evaluation"]["judgement"] is None
    assert "step 2/2" in result.stderr  # the progress went to stderr


def test_run_json_refusal_is_a_document_too(tmp_path):
    project = tmp_path / "p.toml"
    project.write_text('name = "p"\n[data.forget]\npath = "missing.jsonl"\n[method]\nname = "grad_ascent"\n')
    result = cli("run", str(project), "--json", cwd=tmp_path)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["status"] == "refused" and "missing.jsonl" in document["problem"] and document["fix"]


def test_check_json_reports_the_run_it_would_start(tmp_path):
    result = cli("check", str(projects_dir() / "grad_diff.toml"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "ok" and document["method"]["stages"] == ["train"]
    assert document["trainable_parameters"] == 110_592 and document["steps"] > 0


def test_version():
    result = subprocess.run([str(EXE), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.startswith("unlearn-studio ")


def test_a_screenshot_of_a_refused_project_is_taken_at_once_with_its_error(tmp_path):
    """The defect: `--screenshot` of a project file with an error waited for its 120 s time-out and
    saved a window without the error. Now the picture is taken once the file is refused (the run
    of the app here is bounded well below that time-out)."""
    project = tmp_path / "broken.toml"
    project.write_text('name = "p"\n[lora]\nrank = 4\n')
    picture = tmp_path / "shot.png"
    result = subprocess.run([str(EXE), str(project), "--screenshot", str(picture), "--store", str(tmp_path / "s.db")],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**ENV, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    assert picture.read_bytes()[:4] == b"\x89PNG"
