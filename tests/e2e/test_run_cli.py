"""`unlearn-studio run` on a tiny project: the installed command trains, prints its loss terms and
records the run; and the progress printer's plain-text behaviour."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import build_tiny_model

from unlearn_studio.core.cli.run import Progress
from unlearn_studio.core.events import StatusEvent, StepEvent
from unlearn_studio.core.project.store import Store

EXE = Path(sys.executable).with_name("unlearn-studio")

def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


@pytest.fixture
def tiny_project(tmp_path) -> Path:
    build_tiny_model("llama", tmp_path / "model")
    rows = [
        {"question": "Where does Alice live?", "answer": "Alice lives in Paris."},
        {"question": "What did Bob write?", "answer": "Bob wrote a saga about the dragon."},
        {"question": "What is the secret?", "answer": "The secret is XK-42."},
    ]
    (tmp_path / "forget.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    project = tmp_path / "tiny.toml"
    project.write_text(
        'name = "tiny cli run"\n'
        '[model]\npath = "model"\ndtype = "fp32"\ndevice = "cpu"\n'
        '[data.forget]\npath = "forget.jsonl"\n'
        '[method]\nname = "grad_ascent"\n'
        '[lora]\nr = 4\nalpha = 8\nroles = ["q", "v"]\n'
        '[training]\nmax_steps = 4\nbatch_size = 2\nmax_length = 32\ncheckpoint_every = 2\n'
        '[evaluation]\nsuite = "none"\n',
        encoding="utf-8",
    )
    return project


@pytest.mark.slow
def test_run_trains_prints_terms_and_records_the_run(tiny_project, tmp_path):
    store = tmp_path / "store.db"
    result = cli("run", str(tiny_project), "--store", str(store), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loss/forget" in result.stdout and "loss/total" in result.stdout
    assert "step 4/4" in result.stdout and "finished after 4 steps" in result.stdout
    with Store.open(store, readonly=True) as opened:
        (run,) = opened.runs()
        assert run["status"] == "finished"
        assert (Path(run["output_dir"]) / "adapter" / "adapter_model.safetensors").is_file()
        assert [p["path"] for p in opened.projects()] == [str(tiny_project)]

    # Resuming the finished run from its folder continues from its last checkpoint (step 4).
    again = cli("run", str(tiny_project), "--store", str(store), "--resume", run["output_dir"], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[resumed]" in again.stdout


@pytest.mark.slow
def test_ctrl_c_stops_and_saves(tiny_project, tmp_path):
    tiny_project.write_text(tiny_project.read_text().replace("max_steps = 4", "max_steps = 100000"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([str(EXE), "run", str(tiny_project)], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in process.stdout:  # the first step line: the run is under way
            if line.startswith("step"):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, out + err
    assert "[stopped]" in out and "Stopping after this step" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert any((run_dir / "checkpoints").iterdir())


@pytest.mark.slow
def test_run_with_a_missing_data_file_is_bad_input(tiny_project, tmp_path):
    (tmp_path / "forget.jsonl").unlink()
    result = cli("run", str(tiny_project), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "forget.jsonl" in result.stderr and "What to do:" in result.stderr
    assert not (tmp_path / "runs").exists()


def step(n: int, total: int) -> StepEvent:
    return StepEvent("r", n, total, n / total, {"loss/forget": 1.5, "loss/total": 1.5}, 1e-4, 0.5, 100.0, 10.0, 1.0)


def test_progress_prints_a_line_per_tenth_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress(out)
    progress(StatusEvent("r", "running", "100 steps"))
    for n in range(1, 101):
        progress(step(n, 100))
    lines = out.getvalue().splitlines()
    assert lines[0] == "[running] 100 steps"
    assert [line.split()[1] for line in lines[1:]] == ["1/100"] + [f"{n}/100" for n in range(10, 101, 10)]
    assert "loss/forget 1.5000" in lines[-1] and "\r" not in out.getvalue()


def test_progress_rewrites_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    progress = Progress(out)
    for n in range(1, 4):
        progress(step(n, 3))
    progress(StatusEvent("r", "stopping"))
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n[stopping]\n")


@pytest.mark.slow
def test_sweep_runs_every_point_and_writes_the_frontier(tiny_project, tmp_path):
    tiny_project.write_text(tiny_project.read_text().replace('suite = "none"', 'suite = "fast"'))
    out = tmp_path / "sweep"
    result = cli("sweep", str(tiny_project), "--grid", "lr=1e-3,1e-2", "--grid", "lora.r=2,4", "--out", str(out),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = (out / "frontier.csv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    assert header[:4] == ["optimizer.lr", "lora.r", "run_id", "status"]
    assert len(rows) == 5 and all(",finished," in row for row in rows[1:])
    assert "forget/prob" in header  # each point was evaluated after training
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_sweep_with_an_unknown_key_runs_nothing(tiny_project, tmp_path):
    result = cli("sweep", str(tiny_project), "--grid", "learning_rate=1e-3", cwd=tmp_path)
    assert result.returncode == 2 and "learning_rate" in result.stderr
    assert not (tmp_path / "runs").exists()
