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


# core/'s layers, lowest first: a module imports from its own layer and the layers below it only
# (docs/ARCHITECTURE.md draws them). The CLI is core's outermost layer; it imports the GUI only to
# open the app.
CORE_LAYERS = (
    ("errors", "paths", "events", "control", "files", "cache"),
    ("data",),
    ("model",),
    ("project",),
    ("evaluation",),
    ("methods",),
    ("run",),
    ("results",),
    ("demo",),
    ("cli",),
)
LAYER_OF = {unit: level for level, units in enumerate(CORE_LAYERS) for unit in units}


def _core_units_imported(path: Path) -> set[str]:
    """The core units (subsystem folder or shared module) ``path`` imports, anywhere in the file."""
    units = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["unlearn_studio", "core"] and len(parts) > 2:
                units.add(parts[2])
            elif parts[:2] == ["unlearn_studio", "gui"]:
                units.add("gui")
    return units


def test_core_has_only_its_layers_at_the_top():
    top = {p.stem for p in (ROOT / "core").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert top - {"__init__"} == set(LAYER_OF)


def test_no_import_in_core_runs_back_up_its_layers():
    upward = {}
    for path in (ROOT / "core").rglob("*.py"):
        relative = path.relative_to(ROOT / "core")
        if len(relative.parts) == 1 and relative.stem == "__init__":
            continue
        unit = relative.parts[0].removesuffix(".py")
        allowed = {"gui"} if unit == "cli" else set()
        above = {other for other in _core_units_imported(path) - allowed
                 if other == "gui" or LAYER_OF[other] > LAYER_OF[unit]}
        if above:
            upward[str(path.relative_to(ROOT))] = sorted(above)
    assert upward == {}
