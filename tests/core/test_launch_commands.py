"""The headless commands the app shows for a run."""

import shlex

from unlearn_studio.core.run.launch import accelerate_command, run_command


def test_run_command_quotes_paths_and_names_the_store():
    command = run_command("/tmp/my projects/npo.toml", "/tmp/store.db")
    assert shlex.split(command) == ["unlearn-studio", "run", "/tmp/my projects/npo.toml", "--store", "/tmp/store.db"]
    assert "--store" not in run_command("p.toml")


def test_accelerate_command_runs_the_same_cli_module_on_several_processes():
    words = shlex.split(accelerate_command("/tmp/my projects/npo.toml", None, processes=4))
    assert words[:5] == ["accelerate", "launch", "--multi_gpu", "--num_processes", "4"]
    assert words[5:] == ["-m", "unlearn_studio.core.cli", "run", "/tmp/my projects/npo.toml"]
