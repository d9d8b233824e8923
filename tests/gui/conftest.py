"""GUI tests run offscreen, save screenshots for people to look at, and keep QSettings out of $HOME."""

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
# The screens a person looks at: a small laptop, a common laptop, a desktop monitor.
SCREEN_SIZES = ((1024, 700), (1280, 720), (1600, 1000))


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield


def _save(widget, path: Path) -> None:
    from PySide6.QtWidgets import QApplication

    # A plot's axis widens only once a paint has shown its labels are wider; a screen paints
    # again at once, so the picture kept is the second paint, after that layout.
    QApplication.processEvents()
    widget.grab()
    QApplication.processEvents()
    assert widget.grab().save(str(path)), f"could not write {path}"


@pytest.fixture
def screenshot():
    """Save a widget as tests/screenshots/NAME.png (ignored by git) and return the path."""

    def save(widget, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        _save(widget, path)
        return path

    return save


@pytest.fixture
def screenshots():
    """Save a window as it looks on each of SCREEN_SIZES: NAME_1024x700.png and so on. A window is
    given the whole screen; a dialog (``fits``) the size it takes on that screen."""

    def save(widget, name: str, *, fits=None) -> list[Path]:
        SCREENSHOTS.mkdir(exist_ok=True)
        before = widget.size()
        paths = []
        for width, height in SCREEN_SIZES:
            if fits is None:
                widget.resize(width, height)
            else:
                widget.resize(*fits(width, height))
            path = SCREENSHOTS / f"{name}_{width}x{height}.png"
            _save(widget, path)
            paths.append(path)
        widget.resize(before)
        return paths

    return save


# ---- a main window on a fresh store, and short runs on the demo ------------------------------------

WAIT_MS = 300_000  # generous: the test machine is shared; nothing waits this long when it is idle


def short_project_text(*, steps: int = 6, suite: str = "fast", checkpoint_every: int = 50,
                       forget: str = "demo:forget10.jsonl", name: str = "Short GradDiff", lr: float = 5e-4,
                       reference: bool = False) -> str:
    """GradDiff on a few demo rows: a run of seconds, with an evaluation of a few items (against
    the demo's retain model as the reference, with ``reference``: forget quality needs one)."""
    reference_line = 'reference_model = "demo"' if reference else ""
    return f"""
name = "{name}"
[model]
path = "demo"
device = "cpu"
[data.forget]
path = "{forget}"
max_rows = 8
template = "qa"
[data.retain]
path = "demo:retain.jsonl"
max_rows = 8
template = "qa"
[method]
name = "grad_diff"
[lora]
r = 4
alpha = 8.0
roles = ["q", "v"]
[optimizer]
lr = {lr!r}
[training]
max_steps = {steps}
batch_size = 4
max_length = 48
checkpoint_every = {checkpoint_every}
[evaluation]
suite = "{suite}"
{reference_line}
"""


@pytest.fixture
def short_project(tmp_path):
    """``short_project(**settings)`` writes tmp_path/short.toml (see short_project_text) and returns its path."""

    def write(file_name: str = "short.toml", **settings) -> Path:
        path = tmp_path / file_name
        path.write_text(short_project_text(**settings), encoding="utf-8")
        return path

    return write


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window on a new store, complete (not in its staged start-up)."""
    from unlearn_studio.gui.main_window import MainWindow
    from unlearn_studio.gui.startup import open_store

    store, problem = open_store(str(tmp_path / "store.db"))
    assert problem is None
    win = MainWindow(store)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    store.close()


@pytest.fixture
def wait_for_status(qtbot):
    """``with wait_for_status(session, "paused"): ...`` returns once ``session`` reports that status."""
    from unlearn_studio.core.events import StatusEvent

    def blocker(session, status: str):
        return qtbot.waitSignal(session.event, timeout=WAIT_MS,
                                check_params_cb=lambda event: isinstance(event, StatusEvent) and event.status == status)

    return blocker


@pytest.fixture
def start_short_run(qtbot, short_project):
    """``start_short_run(window, **settings)``: open a short project in ``window`` and start it."""
    from unlearn_studio.core.project.config import RunConfig

    def start(win, **settings):
        project = short_project(**settings)
        assert win.open_project(project)
        session = win.start_run(RunConfig.load(project))
        assert session is not None
        return project, session

    return start
