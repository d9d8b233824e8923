"""The shape DESIGN.md fixes: core/ never imports Qt, every package is installed, no bare `core`."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = {"PySide6", "pyqtgraph", "superqt", "qtpy", "PyQt5", "PyQt6", "shiboken6"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_qt():
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & QT_MODULES)
                 for p in (ROOT / "core").rglob("*.py") if _imported_roots(p) & QT_MODULES}
    assert offenders == {}


def test_gui_never_imports_torch():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "gui").rglob("*.py") if "torch" in _imported_roots(p)]
    assert offenders == []


def test_every_package_folder_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapping = {folder: package for package, folder in config["package-dir"].items()}
    on_disk = set()
    for top, package in mapping.items():
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / top).parts
            on_disk.add(".".join((package, *relative)))
    assert on_disk == set(config["packages"])


def test_packages_import_under_the_distribution_name_only(tmp_path):
    # From outside the checkout (python -m pytest puts the checkout itself on sys.path).
    probe = ("import importlib.util as u; "
             "print([u.find_spec(n) is not None for n in ('unlearn_studio.core', 'unlearn_studio.gui', 'core', 'gui')])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[True, True, False, False]"
