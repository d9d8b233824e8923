"""`unlearn-studio sweep PROJECT.toml --grid lr=1e-5,5e-5 --grid beta=0.05,0.1`: run a grid and
write the forget-quality / model-utility frontier as CSV and as a PNG plot.

Ctrl-C stops the current point and saves it, and ends the sweep after it; a second one cancels.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from unlearn_studio.core.cli.run import Progress, _ctrl_c_stops
from unlearn_studio.core.control import RunControl
from unlearn_studio.core.project.config import RunConfig


def add_parser(subparsers) -> None:
    sweep = subparsers.add_parser("sweep", help="run a project over a hyperparameter grid; frontier CSV and plot")
    sweep.add_argument("project", type=Path, help="the project's TOML file")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="a config key (optimizer.lr, method.params.beta, or a unique short name) and its values")
    sweep.add_argument("--store", help="record the runs in this project store (default: no store)")
    sweep.add_argument("--out", type=Path, help="folder for frontier.csv and frontier.png (default: the project's "
                                                "output folder / sweep-<time>)")
    sweep.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The run machinery imports torch and transformers (about 6 s on a busy 2-core machine) and the
    # store sqlite-utils (about 1 s): `unlearn-studio --help` and the other commands must not wait.
    from unlearn_studio.core.evaluation.run_evaluation import RunEvaluator
    from unlearn_studio.core.project.store import Store
    from unlearn_studio.core.run.runner import execute
    from unlearn_studio.core.run.sweep import grid_points, parse_grid, run_sweep, write_csv, write_plot

    config = RunConfig.load(args.project)
    points = grid_points(config, parse_grid(args.grid))  # every point is checked before the first runs
    out = args.out or config.resolve_path(config.output.dir) / time.strftime("sweep-%Y%m%d-%H%M%S")
    store = Store.open(args.store) if args.store else None
    control = RunControl()

    def run_point(point_config: RunConfig, point) -> None:
        if control.request is not None:  # Ctrl-C ended the sweep: later points are not run
            point.status = "skipped"
            return
        label = ", ".join(f"{k}={v}" for k, v in point.values.items())
        print(f"\n== {label}")
        evaluator = RunEvaluator(point_config)
        progress = Progress(sys.stdout)
        with _ctrl_c_stops(control, started=lambda: progress.started):
            # The project is registered by the first run that starts: a refused point adds no row.
            result = execute(point_config, store=store, project_file=args.project.resolve(), listener=progress,
                             control=control, evaluate_fn=evaluator)
        progress.close()
        point.run_id, point.status = result.run_id, result.status
        if "after" in evaluator.results:
            point.metrics = evaluator.results["after"].aggregates

    try:
        run_sweep(config, points, run_point)
    finally:
        if store is not None:
            store.close()
    write_csv(points, out / "frontier.csv")
    write_plot(points, out / "frontier.png", f"{config.name}: {len(points)} runs")
    print(f"\nFrontier: {out / 'frontier.csv'} and {out / 'frontier.png'}")
    for point in points:
        x, y = point.xy()
        mark = "*" if point.on_frontier else " "
        print(f" {mark} {point.values}  utility {x:.4g}  forget quality log10 {y:.4g}  [{point.status}]")
    return 0 if all(p.status in ("finished", "stopped") for p in points) else 1
