"""Forget quality against model utility, one point per evaluated run, the frontier (no other run
keeps more and forgets better) joined in orange. The Evaluation tab shows a project's runs; a
sweep shows its points as they finish."""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from unlearn_studio.gui.words import metric_tooltip

FRONTIER_COLOUR, OTHER_COLOUR = "#ff7f0e", "#1f77b4"


@dataclass(frozen=True)
class Point:
    key: str  # the run id
    label: str
    utility: float
    forget_quality: float
    on_frontier: bool


class FrontierPlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("frontierPlot")
        self.plot.setLabel("bottom", "model utility (higher keeps more)")
        self.plot.setLabel("left", "forget quality (higher forgets better)")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        for side in ("left", "bottom"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.plot.getAxis("left").setWidth(56)
        self.plot.getAxis("left").setToolTip(metric_tooltip("forget_quality_log10"))
        self.plot.getAxis("bottom").setToolTip(metric_tooltip("model_utility"))
        self.points: list[Point] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(self.plot, 1)

    def show_points(self, points: list[Point], current: str | None = None) -> None:
        """Draw ``points``; the one whose key is ``current`` is outlined and called "this run"."""
        self.points = list(points)
        plot = self.plot
        plot.clear()
        for p in points:
            mine = p.key == current
            scatter = pg.ScatterPlotItem([p.utility], [p.forget_quality], size=14 if mine else 9,
                                         brush=pg.mkBrush(FRONTIER_COLOUR if p.on_frontier else OTHER_COLOUR),
                                         pen=pg.mkPen("#111", width=2) if mine else pg.mkPen(None))
            plot.addItem(scatter)
            label = pg.TextItem(p.label + (" (this run)" if mine else ""), color="#333", anchor=(0, 1))
            label.setPos(p.utility, p.forget_quality)
            plot.addItem(label)
        frontier = sorted((p.utility, p.forget_quality) for p in points if p.on_frontier)
        if len(frontier) > 1:
            plot.plot([x for x, _ in frontier], [y for _, y in frontier], pen=pg.mkPen(FRONTIER_COLOUR, width=1.5))
        if points:
            xs, ys = [p.utility for p in points], [p.forget_quality for p in points]
            # A lone point (or a tight cluster) gets a readable range around it, not a zoom into noise.
            pad_x, pad_y = max(0.05, (max(xs) - min(xs)) * 0.15), max(0.5, (max(ys) - min(ys)) * 0.15)
            plot.setXRange(min(xs) - pad_x, max(xs) + pad_x)
            plot.setYRange(min(ys) - pad_y, max(ys) + pad_y)

    def labels(self) -> list[str]:
        return [item.toPlainText() for item in self.plot.getPlotItem().items if hasattr(item, "toPlainText")]
