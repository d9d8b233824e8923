"""Hyperparameter sweeps: run a project over a grid and find the forget-quality / utility frontier.

A grid key is a dotted config path ("optimizer.lr", "method.params.beta", "lora.r") or a short
name that names exactly one of them ("lr", "beta"). Every grid point is an ordinary run of the
project with those values set, so it is recorded, evaluated and resumable like any other.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.methods.registry import get_method
from unlearn_studio.core.project.config import RunConfig

FRONTIER_X = "model_utility"
FRONTIER_Y = "forget_quality_log10"


def parse_value(text: str) -> Any:
    """"1e-5" → 1e-05, "8" → 8, "true" → True; anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_grid(specs: list[str]) -> dict[str, list[Any]]:
    """["lr=1e-5,5e-5", "alpha=1,2"] → {"lr": [1e-05, 5e-05], "alpha": [1, 2]}."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UserError(f"'--grid {spec}' is not of the form KEY=V1,V2,…",
                            "Write for example --grid lr=1e-5,5e-5,1e-4 (a config key, then its values).")
        if key.strip() in grid:
            raise UserError(f"'{key.strip()}' appears in two --grid options", "Give each key once, with all its values.")
        grid[key.strip()] = [parse_value(v) for v in values.split(",") if v.strip()]
    if not grid:
        raise UserError("A sweep needs at least one --grid option", "Add for example --grid lr=1e-5,5e-5.")
    return grid


def _config_paths(config: RunConfig) -> list[str]:
    """Every settable dotted path: dataclass fields, and the method's params (declared and given)."""
    paths = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            elif not isinstance(value, dict):
                paths.append(f"{prefix}{f.name}")

    walk(config, "")
    declared = {h.name for h in get_method(config.method.name).hyperparameters}
    paths += [f"method.params.{name}" for name in sorted(declared | set(config.method.params))]
    return paths


def resolve_key(config: RunConfig, key: str) -> str:
    """The full dotted path a grid key means; a UserError when it means none or several."""
    paths = _config_paths(config)
    if key in paths:
        return key
    matches = [p for p in paths if p.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"Grid key '{key}' could mean {' or '.join(matches)}", "Write the full dotted key.")
    raise UserError(f"Grid key '{key}' is not a setting of this project",
                    f"Use a dotted key such as optimizer.lr or method.params.<name>; settable keys: "
                    f"{', '.join(p for p in paths if not p.startswith('data'))}.")


def with_values(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """A copy of ``config`` with dotted paths set, validated like a project file."""
    data = config.to_dict()
    for path, value in values.items():
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return RunConfig.from_dict(data, base_dir=config.base_dir)


@dataclass
class SweepPoint:
    values: dict[str, Any]
    run_id: str = ""
    status: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    on_frontier: bool = False

    def xy(self) -> tuple[float, float]:
        return self.metrics.get(FRONTIER_X, math.nan), self.metrics.get(FRONTIER_Y, math.nan)


def grid_points(config: RunConfig, grid: dict[str, list[Any]]) -> list[SweepPoint]:
    """Every combination, keys resolved to full paths, each checked by building its config."""
    keys = [resolve_key(config, key) for key in grid]
    points = [SweepPoint(dict(zip(keys, combo))) for combo in itertools.product(*grid.values())]
    for point in points:
        with_values(config, point.values)  # a bad value fails here, before anything runs
    return points


def mark_frontier(points: list[SweepPoint]) -> None:
    """Pareto frontier: no other point has both higher utility and higher forget quality."""
    scored = [p for p in points if not any(map(math.isnan, p.xy()))]
    for p in scored:
        x, y = p.xy()
        p.on_frontier = not any(q is not p and q.xy()[0] >= x and q.xy()[1] >= y and q.xy() != (x, y)
                                for q in scored)


def run_sweep(config: RunConfig, points: list[SweepPoint],
              run_point: Callable[[RunConfig, SweepPoint], None]) -> list[SweepPoint]:
    """Run each point with ``run_point(config, point)``, which fills in run_id, status and metrics."""
    for point in points:
        run_point(with_values(config, point.values), point)
    mark_frontier(points)
    return points


def write_csv(points: list[SweepPoint], path: Path) -> None:
    keys = list(dict.fromkeys(k for p in points for k in p.values))
    metrics = list(dict.fromkeys(k for p in points for k in p.metrics))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*keys, "run_id", "status", "on_frontier", *metrics])
        for p in points:
            writer.writerow([*(p.values.get(k, "") for k in keys), p.run_id, p.status, int(p.on_frontier),
                             *(p.metrics.get(m, "") for m in metrics)])


def write_plot(points: list[SweepPoint], path: Path, title: str) -> None:
    """Forget quality against model utility, the frontier joined by a line (matplotlib, no display:
    a Figure of its own, not pyplot, so that no process-wide backend is chosen)."""
    scored = [p for p in points if not any(map(math.isnan, p.xy()))]
    figure = Figure(figsize=(7.2, 4.8 + 0.22 * len(scored)), dpi=120)
    axes = figure.add_subplot()
    # Points are numbered on the plot and spelled out in the legend: labels beside close points overlap.
    for number, p in enumerate(scored, 1):
        x, y = p.xy()
        values = ", ".join(f"{k.rsplit('.', 1)[-1]}={v:g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
                           for k, v in p.values.items())
        axes.scatter([x], [y], color="tab:orange" if p.on_frontier else "tab:blue", zorder=3,
                     label=f"{number}: {values}{' (frontier)' if p.on_frontier else ''}")
        axes.annotate(str(number), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    frontier = sorted(p.xy() for p in scored if p.on_frontier)
    if len(frontier) > 1:
        axes.plot(*zip(*frontier), color="tab:orange", linewidth=1)
    if scored:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8, frameon=False)
    axes.set_xlabel("model utility (higher keeps more)")
    axes.set_ylabel("forget quality, log10 p (higher forgets better)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
