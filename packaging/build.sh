#!/usr/bin/env bash
# Build the installable one-folder bundle of Unlearn Studio with PyInstaller, check that it starts
# (a screenshot of its first window), and install the desktop entry and icon with it.
#
#   packaging/build.sh            -> dist/unlearn-studio/ (run dist/unlearn-studio/unlearn-studio)
#
# Uses the project's .venv (created by `make setup` if missing) plus PyInstaller.
set -euo pipefail
cd "$(dirname "$0")/.."
make setup >/dev/null
PY=.venv/bin/python
$PY -m pip install --quiet "pyinstaller>=6.10"
# The editable install maps core/ and gui/ to unlearn_studio.* with an import hook PyInstaller
# cannot follow; analyse a plain copy of the package instead.
stage=build/pyinstaller-src/unlearn_studio
rm -rf build/pyinstaller-src && mkdir -p "$stage"
for part in core gui resources; do cp -r "$part" "$stage/$part"; done
find build/pyinstaller-src -name __pycache__ -prune -exec rm -rf {} +
export PYTHONPATH="$PWD/build/pyinstaller-src"
$PY -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/unlearn-studio.spec

bundle=dist/unlearn-studio
mkdir -p "$bundle/share/applications" "$bundle/share/icons/hicolor/scalable/apps"
cp packaging/unlearn-studio.desktop "$bundle/share/applications/"
cp resources/icons/unlearn-studio.svg "$bundle/share/icons/hicolor/scalable/apps/"

# Start the built app on a virtual screen (Xvfb when installed, else Qt's offscreen platform) and
# save its first window once the demo project has loaded.
shot=dist/unlearn-studio-first-window.png
store=$(mktemp -d)/store.db
# Qt's X11 plugin needs the system's xcb libraries (Debian/Ubuntu: libxcb-cursor0 libxcb-icccm4
# libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0).
missing=$(ldd "$bundle/_internal/PySide6/Qt/plugins/platforms/libqxcb.so" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
if [ -n "$missing" ]; then
    echo "Qt's X11 plugin lacks system libraries: $missing- install them to start the bundle on a desktop; checking it offscreen instead." >&2
fi
if command -v xvfb-run >/dev/null && [ -z "$missing" ]; then
    xvfb-run -a -s "-screen 0 1400x900x24" "$bundle/unlearn-studio" --screenshot "$shot" --store "$store"
else
    QT_QPA_PLATFORM=offscreen "$bundle/unlearn-studio" --screenshot "$shot" --store "$store"
fi
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)); first window: $shot"
