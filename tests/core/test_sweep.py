"""Sweep grids: parsing, key resolution, per-point configs, the frontier and its files."""

import csv
import math

import pytest

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.sweep import (
    SweepPoint,
    grid_points,
    mark_frontier,
    parse_grid,
    resolve_key,
    with_values,
    write_csv,
    write_plot,
)


@pytest.fixture
def config():
    return RunConfig.from_toml('name = "p"\n[method]\nname = "npo"\n[data.forget]\npath = "f.jsonl"\n')


def test_parse_grid_types_values():
    assert parse_grid(["lr=1e-5,5e-5", "lora.r=4,8", "flag=true"]) == {
        "lr": [1e-5, 5e-5], "lora.r": [4, 8], "flag": [True]}
    for bad in (["lr"], ["=1,2"], ["lr="], []):
        with pytest.raises(UserError):
            parse_grid(bad)


def test_short_keys_resolve_to_one_setting(config):
    assert resolve_key(config, "lr") == "optimizer.lr"
    assert resolve_key(config, "beta") == "method.params.beta"  # declared by NPO
    assert resolve_key(config, "lora.alpha") == "lora.alpha"
    with pytest.raises(UserError, match="not a setting"):
        resolve_key(config, "learning_rate")


def test_grid_points_are_the_product_and_are_validated(config):
    points = grid_points(config, {"lr": [1e-5, 2e-4], "beta": [0.05, 0.1, 0.2]})
    assert len(points) == 6
    assert points[0].values == {"optimizer.lr": 1e-5, "method.params.beta": 0.05}
    point_config = with_values(config, points[-1].values)
    assert point_config.optimizer.lr == 2e-4 and point_config.method.params["beta"] == 0.2
    assert config.optimizer.lr != 2e-4  # the project itself is untouched
    with pytest.raises(UserError, match="training.batch_size"):
        grid_points(config, {"batch_size": ["eight"]})


def test_frontier_keeps_points_nobody_beats_on_both_axes():
    points = [SweepPoint({"i": i}, metrics={"model_utility": u, "forget_quality_log10": q})
              for i, (u, q) in enumerate([(0.9, -10), (0.8, -2), (0.7, -3), (0.5, -1), (0.95, math.nan)])]
    mark_frontier(points)
    assert [p.on_frontier for p in points] == [True, True, False, True, False]


def test_csv_and_plot_are_written(tmp_path):
    points = [SweepPoint({"optimizer.lr": lr}, run_id=f"r{i}", status="finished",
                         metrics={"model_utility": 0.9 - i / 10, "forget_quality_log10": -5 + i})
              for i, lr in enumerate([1e-5, 1e-4])]
    mark_frontier(points)
    write_csv(points, tmp_path / "frontier.csv")
    write_plot(points, tmp_path / "frontier.png", "test")
    rows = list(csv.DictReader((tmp_path / "frontier.csv").open()))
    assert [r["run_id"] for r in rows] == ["r0", "r1"] and rows[0]["on_frontier"] == "1"
    assert (tmp_path / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
