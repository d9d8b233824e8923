"""A demo project on another demo world: every "demo" in it pointed at another `demo build` folder.

A project names the shipped demo three ways: model.path = "demo", data paths "demo:NAME" (the data
roles and [evaluation.sets]) and evaluation.reference_model = "demo". ``on_world`` rewrites all
three to a folder that ``unlearn-studio demo build --seed N --out DIR`` wrote (DIR/model,
DIR/data/NAME, DIR/retain_model), so that the run trains that world's model and is evaluated
against that world's sets and retain model, never the shipped ones. A project that names none of
them is refused: it has nothing of the demo to move.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.files import own_kind
from unlearn_studio.core.project.config import DEMO_MODEL, DEMO_PREFIX, RunConfig

DEMO_REFERENCE = "demo"  # evaluation.reference_model naming the demo's retain model


def world_seed(world: Path) -> int:
    """The seed of the demo build in ``world``; a UserError when ``world`` is not one."""
    world = Path(world)
    manifest = world / "data" / "manifest.json"
    if own_kind(world) != "demo" or not manifest.is_file() or not (world / "model").is_dir():
        raise UserError(f"{world} is not a demo world (a folder that `unlearn-studio demo build` wrote)",
                        "Build one with: unlearn-studio demo build --seed N --out DIR, and pass DIR.")
    return int(json.loads(manifest.read_text(encoding="utf-8"))["seed"])


def _moved(config: RunConfig, path: str, world: Path) -> str:
    """A "demo:NAME" path in ``world``'s data; any other path absolute, so that it holds wherever the
    moved project is saved."""
    if path.startswith(DEMO_PREFIX):
        return str(world / "data" / path[len(DEMO_PREFIX):])
    return str(config.resolve_path(path))


def on_world(config: RunConfig, world: Path) -> RunConfig:
    """A copy of ``config`` whose demo model, data and reference model are those of ``world``."""
    world = Path(world).resolve()
    world_seed(world)
    moved = copy.deepcopy(config)
    touched = False
    if moved.model.path == DEMO_MODEL:
        moved.model.path, touched = str(world / "model"), True
    for source in [s for role, top in moved.data.items() for s in top.sources(role).values()] + list(
            moved.evaluation.sets.values()):
        touched |= source.path.startswith(DEMO_PREFIX)
        source.path = _moved(config, source.path, world)
    if moved.evaluation.reference_model == DEMO_REFERENCE:
        moved.evaluation.reference_model, touched = str(world / "retain_model"), True
    if not touched:
        raise UserError(f"The project '{config.name}' uses nothing of the demo (no model \"demo\", no \"demo:\" "
                        "data, no reference model \"demo\")", "Point its paths at the world's folders yourself.")
    return moved


def write_project_on_world(project: Path, world: Path, out: Path) -> RunConfig:
    """Write ``project`` moved onto ``world`` to the new file ``out`` (its paths absolute, a header
    saying where it came from); an existing ``out`` is refused, so nothing is overwritten."""
    project, world, out = Path(project), Path(world).resolve(), Path(out)
    if out.exists():
        raise UserError(f"{out} already exists", "Choose a new file name for the project on the other world.")
    moved = on_world(RunConfig.load(project), world)
    header = (f"# {project.name} on the demo world in {world} (seed {world_seed(world)}), written by\n"
              f"#   unlearn-studio demo project {project} --world {world} --out {out}\n"
              "# Its model, data and reference model are that world's; the recipe is unchanged.\n\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + moved.to_toml(), encoding="utf-8")
    return moved
