"""Plain text for people: the before/after table, one result's metrics, and every metric's label,
meaning and ideal value (``eval --explain``; the app shows the same words as tooltips)."""

from __future__ import annotations

import math

from unlearn_studio.core.evaluation.registry import Metric
from unlearn_studio.core.evaluation.set_metrics import SET_METRICS
from unlearn_studio.core.evaluation.suite_metrics import SUITE_METRICS
from unlearn_studio.core.evaluation.verdicts import VERDICTS, Judgement, Row

MARKS = {"reached": "✓", "short": "…", "none": "·", "wrong_way": "✗", "overshot": "!"}


def metric_catalog() -> list[Metric]:
    """Every registered metric: those of one set, then those that combine sets."""
    return [*SET_METRICS, *SUITE_METRICS]


def explain() -> str:
    """Each metric's label, one-line meaning and ideal value."""
    lines = []
    for metric in metric_catalog():
        lines += [f"{metric.label} ({metric.name})", f"  what:  {metric.meaning}", f"  ideal: {metric.ideal}", ""]
    lines += ["Verdicts:"] + [f"  {MARKS[key]} {text}" for key, text in VERDICTS.items()]
    return "\n".join(lines)


def number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _change(row: Row) -> str:
    if math.isnan(row.change):
        return "–"
    low, high = row.change_ci
    text = f"{row.change:+.3g} [{number(low)}, {number(high)}]"
    if row.p_value is not None:
        text += f" p={row.p_value:.2g}"
    return text


def _target(row: Row) -> str:
    if row.target is None:
        return row.reason[:40] + ("…" if len(row.reason) > 40 else "") if row.reason else "–"
    if row.target.kind == "before":
        return row.target.words
    sign = {True: "≤ ", False: "≥ "}.get(row.target.at_most, "")
    return f"{sign}{number(row.target.value)} ({row.target.kind})"


def _verdict(row: Row) -> str:
    if row.verdict is None:
        return ""
    return f"{MARKS[row.verdict]} {VERDICTS[row.verdict]}" + (f" ({row.note})" if row.note else "")


def _grid(header: tuple[str, ...], cells: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    return lines


def format_judgement(judgement: Judgement, *, every_row: bool = False) -> str:
    """The before/after table: the headline rows (every row with ``every_row``), then the
    paraphrase test side by side, what was not measured and why, and collapse warnings."""
    rows = judgement.rows if every_row else judgement.headline
    lines = [f"Summary: {judgement.summary_line()}", ""]
    lines += _grid(("metric", "before", "after", "change [95% CI]", "target", "verdict"),
                   [(r.label, number(r.before), number(r.after), _change(r), _target(r), _verdict(r)) for r in rows])
    if judgement.paraphrase:
        lines += ["", "Paraphrase test: the trained phrasing and the held-out paraphrase, before -> after"]
        lines += _grid(("metric", "trained phrasing", "verdict", "paraphrase", "verdict"),
                       [(t.label, f"{number(t.before)} -> {number(t.after)}", _verdict(t),
                         f"{number(p.before)} -> {number(p.after)}", _verdict(p)) for t, p in judgement.paraphrase])
    if judgement.unavailable:
        lines += ["", "Not measured or not judged:"]
        lines += [f"  {key}: {reason}" for key, reason in judgement.unavailable.items()]
    lines += [f"warning: {warning}" for warning in judgement.warnings]
    return "\n".join(lines)


def format_rows(rows: list[Row], skipped: dict[str, str]) -> str:
    """One result on its own: value with its interval, and the target of forget metrics."""
    def interval(row: Row) -> str:
        return f"[{number(row.change_ci[0])}, {number(row.change_ci[1])}]"
    lines = _grid(("metric", "value", "95% CI", "target"),
                  [(r.label, number(r.after), interval(r), _target(r) if r.goal == "forget" else "") for r in rows])
    if skipped:
        lines += ["", "Not measured:"] + [f"  {key}: {reason}" for key, reason in skipped.items()]
    return "\n".join(lines)


def markdown_lines(judgement: Judgement) -> list[str]:
    """The headline rows as a Markdown table (a model card's evaluation section)."""
    lines = [f"{judgement.summary_line()}.", "", "| metric | before | after | change [95% CI] | target | verdict |",
             "|---|---:|---:|---|---|---|"]
    lines += [f"| {r.label} | {number(r.before)} | {number(r.after)} | {_change(r)} | {_target(r)} | {_verdict(r)} |"
              for r in judgement.headline]
    if not judgement.headline:
        lines.append("| (no headline metric in both phases) | | | | | |")
    return lines
