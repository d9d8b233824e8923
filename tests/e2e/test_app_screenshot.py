"""`unlearn-studio --screenshot PNG` opens the app on the demo project, saves the loaded window and quits
(the check that packaging/build.sh runs on a built bundle)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

EXE = Path(sys.executable).with_name("unlearn-studio")


def offscreen_screen(folder: Path, width: int, height: int) -> str:
    """QT_QPA_PLATFORM for an offscreen screen of this size (the default one is 800 x 800)."""
    config = folder / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "screen", "x": 0, "y": 0, "width": width, "height": height,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    return f"offscreen:configfile={config}"


def test_the_app_saves_its_first_window_and_quits(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": offscreen_screen(tmp_path, 1600, 1000), "HF_HUB_OFFLINE": "1",
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    png = tmp_path / "window.png"
    done = subprocess.run([str(EXE), "--screenshot", str(png), "--store", str(tmp_path / "store.db")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 800 and image.height() >= 500
    # Not a blank frame: the window has drawn text and widgets, so many colours appear.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20
