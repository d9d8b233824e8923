"""How long from starting the app until its first window is on screen (target: under 10 s).

    QT_QPA_PLATFORM=offscreen python bench/bench_startup.py [--repeats 3]

Each repeat starts a fresh interpreter (as `unlearn-studio` does) that builds the main window on
the demo project and reports when the event loop first runs with the window shown, then exits at
once; the time is taken in this process, from just before the child starts until it has exited
(so it slightly overstates the time to the first window).
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
CHILD = """
import os, sys
from PySide6.QtCore import QTimer
from unlearn_studio.gui.app import build_main_window, create_application
app = create_application()
window = build_main_window(sys.argv[1], sys.argv[2])
window.show()
QTimer.singleShot(0, lambda: (print("shown", flush=True), app.quit()))
app.exec()
window.store.close()
os._exit(0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    seconds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "projects" / "demo.toml"),
                                   str(Path(folder) / "store.db")], capture_output=True, text=True, env=env)
            if "shown" not in done.stdout:
                raise SystemExit(done.stderr[-2000:])
            seconds.append(time.perf_counter() - started)
    print(f"first window shown after {statistics.median(seconds):.2f} s (median of {args.repeats}; "
          f"all: {', '.join(f'{s:.2f}' for s in seconds)}; target < 10 s)")


if __name__ == "__main__":
    main()
