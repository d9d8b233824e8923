"""How long until the app's first window is painted, against a bare PySide6 window with as many
widgets (target, issue 17: at most 1.5 times as long).

    QT_QPA_PLATFORM=offscreen python bench/bench_startup.py [--repeats 7]

Each repeat starts two fresh interpreters one after the other, the app (as `unlearn-studio`
starts it, on the demo project with a new store) and the bare window, and times each from just
before the process starts until it reports its window's first paint. Both may keep compiled
bytecode (in a temporary cache folder, as an installed app has it, even where
PYTHONDONTWRITEBYTECODE is set), and a first pair that fills that cache is not counted. The app's child also says
how many widgets its window had then, which the bare window copies, and which heavy libraries
had been imported by that paint (none should be). The ratio is taken per pair; the median and
the spread of the ratios are printed, and the ratio of the two fastest times (the runs least
disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "peft", "pyqtgraph", "numpy", "sqlite_utils", "pandas")
FIRST_PAINT = """
import os, sys
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QWidget

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            heavy = ",".join(m for m in {heavy!r} if m in sys.modules) or "-"
            print("painted", len(watched.findChildren(QWidget)), heavy, flush=True)
            os._exit(0)
        return False
"""
APP = FIRST_PAINT + """
from PySide6.QtCore import QSettings
from unlearn_studio.gui.app import create_application, start_main_window
QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[3])
app = create_application()
window = start_main_window(sys.argv[1], sys.argv[2])
watcher = FirstPaint()
window.installEventFilter(watcher)
window.show()
app.exec()
"""
BARE = FIRST_PAINT + """
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QVBoxLayout
app = QApplication(sys.argv[:1])
window = QMainWindow()
central = QWidget()
layout = QVBoxLayout(central)
for number in range(int(sys.argv[1]) - 1):
    layout.addWidget(QLabel(f"label {{number}}", central))
window.setCentralWidget(central)
window.resize(1200, 780)
watcher = FirstPaint()
window.installEventFilter(watcher)
window.show()
app.exec()
"""


def first_paint(code: str, *args: str, bytecode: str) -> tuple[float, int, str]:
    """Seconds from starting ``code`` in a fresh interpreter until its window's first paint."""
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "PYTHONPYCACHEPREFIX": bytecode}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    line = child.stdout.readline()
    seconds = time.perf_counter() - started
    child.wait()
    if not line.startswith("painted"):
        raise SystemExit(f"no first paint: {line!r}\n{child.stderr.read()[-2000:]}")
    _, widgets, heavy = line.split()
    return seconds, int(widgets), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    app_code, bare_code = APP.format(heavy=HEAVY), BARE.format(heavy=HEAVY)
    app_times, bare_times, ratios = [], [], []
    with tempfile.TemporaryDirectory() as bytecode:
        for repeat in range(args.repeats + 1):  # the first pair fills the bytecode cache
            with tempfile.TemporaryDirectory() as folder:
                app_s, widgets, heavy = first_paint(app_code, str(REPO / "projects" / "demo.toml"),
                                                    str(Path(folder) / "store.db"), str(Path(folder) / "settings"),
                                                    bytecode=bytecode)
            bare_s, _, _ = first_paint(bare_code, str(widgets), bytecode=bytecode)
            if repeat:
                app_times.append(app_s)
                bare_times.append(bare_s)
                ratios.append(app_s / bare_s)
    print(f"first painted window: app {statistics.median(app_times):.2f} s, bare PySide6 window with "
          f"{widgets} widgets {statistics.median(bare_times):.2f} s (medians of {args.repeats} pairs)")
    print(f"ratio app / bare: median of pairs {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max "
          f"{max(ratios):.2f}), fastest app / fastest bare {min(app_times) / min(bare_times):.2f} (target <= 1.5)")
    print(f"heavy modules imported by the app's first paint: {heavy}")


if __name__ == "__main__":
    main()
