"""A window at once (issue 17, item 1): importing the app, and `unlearn-studio` without a command,
load no ML library; the first window shows the project list and the project's name, then the
store, the plotting library and the ML libraries arrive in the background, each named while it loads."""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtCore import QSettings

from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.app import start_main_window
from unlearn_studio.gui.projects_panel import RECENT_KEY

ML = ("torch", "transformers", "peft")
WAIT_MS = 300_000


def imported_after(code: str) -> list[str]:
    """The ML libraries imported once ``code`` has run in a fresh interpreter."""
    probe = code + f"\nimport sys\nprint('imported:', *(m for m in {ML!r} if m in sys.modules))"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1].split()[1:]


def test_importing_the_app_imports_no_ml_library():
    assert imported_after("import unlearn_studio.gui.app") == []


def test_the_command_without_arguments_reaches_the_app_without_ml_libraries():
    code = ("import unlearn_studio.gui.app as app\n"
            "app.main = lambda **options: 0  # the window itself is not needed here\n"
            "from unlearn_studio.core.cli.main import main\n"
            "assert main([]) == 0 and main(['projects/demo.toml']) == 0")
    assert imported_after(code) == []


def test_the_window_comes_first_then_the_store_plots_and_ml_libraries(qtbot, tmp_path, screenshots):
    name = RunConfig.load(demo_project()).name
    QSettings().setValue(RECENT_KEY, [[name, str(demo_project())]])  # as the last session left it
    window = start_main_window(demo_project(), str(tmp_path / "store.db"))
    qtbot.addWidget(window)
    # Before it is shown: the list and the project's name, nothing else built yet.
    assert window.projects.names() == [name] and window.pending.title.text() == name
    assert window.page is None and window.store is None and window.runs is None
    stages, jobs = [], []
    window.store_ready.connect(lambda: stages.append("store"))
    window.runs_ready.connect(lambda: stages.append("plots"))
    window.startup.ml_loaded.connect(lambda: stages.append("ml"))
    window.jobs.job_started.connect(lambda job: jobs.append(job.name))
    with qtbot.waitSignal(window.summaries_done, timeout=WAIT_MS):
        window.show()
    assert stages == ["store", "plots", "ml"]
    stage_jobs = ["Opening the project store", "Loading the plotting library",
                  "Loading the ML libraries (torch, transformers, peft)"]
    assert [job for job in jobs if job in stage_jobs] == stage_jobs
    assert jobs.index("Looking for a run the last session left unfinished") > jobs.index(stage_jobs[2])
    assert {"Reading the model", "Reading the forget data"} <= set(jobs)  # after the ML libraries, each named
    assert window.page.config.name == name and window.store is not None and window.runs is not None
    assert window.menu_actions.new_run.isEnabled()
    screenshots(window, "main_window_started")
    window.close()
    window.store.close()
