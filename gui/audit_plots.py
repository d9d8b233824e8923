"""The audit's plots: the relearning curves of the three models (one plot per attack data), a bar
per prompt attack and model, and the probes' accuracy (and the logit lens) by layer. They draw a
stored audit result; nothing here measures anything."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from unlearn_studio.gui.numbers import number
from unlearn_studio.gui.plots import Plot

MODEL_COLOURS = {"original": "#1f77b4", "unlearned": "#d62728", "reference": "#2ca02c"}
MODEL_NAMES = {"original": "original", "unlearned": "unlearned", "reference": "reference"}
POSITION_DASHED = {"last prompt token": True, "before the value": False}
BAR_AXIS_HEIGHT = 44
DASH = "–"


def _finite(values) -> list[float]:
    return [v if v is not None and math.isfinite(v) else math.nan for v in values]


def ratio_text(recovery) -> str:
    """"0.29 [0.10, 0.48]" or the reason there is no ratio."""
    if not math.isfinite(recovery.ratio):
        return recovery.reason or "no ratio"
    interval = f" [{number(recovery.low, 2)}, {number(recovery.high, 2)}]" if math.isfinite(recovery.low) else ""
    return f"{number(recovery.ratio, 2)}{interval}"


class RecoveryPlots(QWidget):
    """One plot per relearning data: the metric after k steps for each model, the ratios below."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.plots: dict[str, Plot] = {}
        self.notes: dict[str, QLabel] = {}

    def clear(self) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.plots.clear()
        self.notes.clear()

    def show_result(self, relearn, metric_label: str) -> None:
        self.clear()
        for column, (data, info) in enumerate(relearn.data.items()):
            if data not in relearn.curves:
                continue
            plot = Plot(f"on {info['words']}", metric_label, bottom="relearning steps")
            plot.setObjectName(f"relearnPlot_{data}")
            for model in relearn.curves[data]:
                curve = plot.curve(MODEL_NAMES.get(model, model), MODEL_COLOURS.get(model, "#7f7f7f"),
                                   dashed=model == "reference")
                curve.setData(relearn.steps, _finite(relearn.values(data, model)), symbol="o", symbolSize=5,
                              symbolBrush=MODEL_COLOURS.get(model, "#7f7f7f"))
            plot.widget.setXRange(0, relearn.steps[-1], padding=0.04)
            plot.widget.setYRange(0, 1, padding=0.04)
            by_step = dict(zip(relearn.steps, relearn.ratios[data], strict=True))
            note = QLabel("Recovery ratio: " + "; ".join(f"k={k}: {ratio_text(by_step[k])}"
                                                         for k in relearn.steps if k))
            note.setWordWrap(True)
            note.setToolTip("0: the level of the reference model (never saw the forget data); 1: the original's")
            self.grid.addWidget(plot, 0, column)
            self.grid.addWidget(note, 1, column)
            self.plots[data], self.notes[data] = plot, note


class AttackBars(Plot):
    """A group of bars per prompt attack: the metric of each model under it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Prompt attacks (above each: the recovery ratio)", "", bottom=None, parent=parent)
        self.widget.setObjectName("attackBars")
        self.widget.getAxis("bottom").setHeight(BAR_AXIS_HEIGHT)  # two lines of attack names
        self.bars: list[pg.BarGraphItem] = []
        self.labels: list[str] = []
        self.ratios: list[str] = []

    def show_result(self, prompts, metric_label: str, models: list[str]) -> None:
        self.widget.clear()
        self.legend.clear_entries()
        self.widget.setLabel("left", metric_label)
        self.bars, self.labels = [], [attack.label for attack in prompts.attacks]
        width = 0.8 / max(len(models), 1)
        for index, model in enumerate(models):
            xs = [a + (index - (len(models) - 1) / 2) * width for a in range(len(prompts.attacks))]
            heights = [0.0 if math.isnan(v) else v for v in _finite(a.value(model) for a in prompts.attacks)]
            colour = MODEL_COLOURS.get(model, "#7f7f7f")
            bars = pg.BarGraphItem(x=xs, height=heights, width=width * 0.92, brush=colour, pen=pg.mkPen(None))
            self.widget.addItem(bars)
            self.bars.append(bars)
            self.legend.add(MODEL_NAMES.get(model, model), colour)
        self.ratios = [ratio_text(attack.recovery) for attack in prompts.attacks]
        for index, attack in enumerate(prompts.attacks):
            top = max((v for v in _finite(attack.value(m) for m in models) if not math.isnan(v)), default=0.0)
            text = pg.TextItem(self.ratios[index].split(" [")[0] if math.isfinite(attack.recovery.ratio) else DASH,
                               color="#333", anchor=(0.5, 1))
            text.setToolTip(self.ratios[index])
            text.setPos(index, top + 0.01)
            self.widget.addItem(text)
        ticks = [(i, _wrapped(label)) for i, label in enumerate(self.labels)]
        self.widget.getAxis("bottom").setTicks([ticks])
        self.widget.setXRange(-0.6, len(self.labels) - 0.4, padding=0)
        self.widget.setYRange(0, 1.15, padding=0.02)  # room for a ratio above a bar at 1


def _wrapped(label: str) -> str:
    """An attack's name on two short lines, so that the axis labels do not run into each other."""
    words = label.split(" (")[0].split()
    half = (len(words) + 1) // 2
    return " ".join(words[:half]) + ("\n" + " ".join(words[half:]) if words[half:] else "")


class ProbePlots(QWidget):
    """Probe accuracy by layer for each model (solid: before the value; dashed: last prompt token),
    chance as a grey line; beside it, the logit lens's share of rows whose value ranks first."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.accuracy = Plot("Probe accuracy by layer (solid: before the value; dashed: last prompt token)",
                             "accuracy", bottom="layer")
        self.accuracy.widget.setObjectName("probePlot")
        self.lens = Plot("Logit lens: value ranked first", "share of rows", bottom="layer")
        self.lens.widget.setObjectName("lensPlot")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.accuracy, 0, 0)
        grid.addWidget(self.lens, 0, 1)
        grid.addWidget(self.note, 1, 0, 1, 2)

    def show_result(self, probes) -> None:
        for plot in (self.accuracy, self.lens):
            plot.widget.clear()
            plot.legend.clear_entries()
            plot.widget.getAxis("bottom").setTicks([list(enumerate(_short_layers(probes.layers)))])
            plot.widget.setYRange(0, 1, padding=0.04)
        layers = list(range(len(probes.layers)))
        named = set()
        # Solid lines first, so that the legend shows each model's colour as a solid line.
        for position, by_model in sorted(probes.accuracy.items(), key=lambda item: POSITION_DASHED.get(item[0], False)):
            for model, values in by_model.items():
                curve = self.accuracy.curve(MODEL_NAMES.get(model, model), MODEL_COLOURS.get(model, "#7f7f7f"),
                                            dashed=POSITION_DASHED.get(position, False), legend=model not in named)
                curve.setData(layers, _finite(values), symbol="o", symbolSize=4)
                named.add(model)
        chance = max((v for v in probes.chance.values() if v is not None and math.isfinite(v)), default=math.nan)
        if math.isfinite(chance):
            self.accuracy.curve("chance", "#999999", dashed=True).setData(layers, [chance] * len(layers))
        for model, lens in probes.lens.items():
            curve = self.lens.curve(MODEL_NAMES.get(model, model), MODEL_COLOURS.get(model, "#7f7f7f"))
            curve.setData(layers, _finite(lens.get("top1", [])), symbol="o", symbolSize=4)
        flag = "Flagged: " if probes.flagged else "Not flagged: "
        self.note.setText(flag + probes.flag_reason + (f". No logit lens: {probes.lens_note}" if probes.lens_note
                                                       and not probes.lens else ""))


def _short_layers(layers: list[str]) -> list[str]:
    return ["emb" if name == "embeddings" else name.removeprefix("layer ") for name in layers]
