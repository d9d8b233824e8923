"""An audit as text: the tables ``unlearn-studio audit`` prints, and the section of the exported
model card (Markdown). Numbers are the stored result's; nothing is measured here."""

from __future__ import annotations

import math

from unlearn_studio.core.results.audit.models import MODEL_WORDS
from unlearn_studio.core.results.audit.result import AuditResult, in_folder, newest

DASH = "–"


def _number(value: float | None) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:.3f}"


def _ratio(recovery) -> str:
    if not math.isfinite(recovery.ratio):
        return DASH
    interval = f" [{recovery.low:.2f}, {recovery.high:.2f}]" if math.isfinite(recovery.low) else ""
    return f"{recovery.ratio:.2f}{interval}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    def line(cells):
        return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
    return [line(header), line(["-" * w for w in widths]), *[line(row) for row in rows]]


def _relearn_lines(result: AuditResult) -> list[str]:
    relearn = result.relearn
    measured = relearn.measured
    lines = [(f"Relearning ({relearn.seconds:.0f} s): {result.target['label']} on {measured['items']} items of "
             f"'{measured['set']}' ({measured['left_out']} left out as in the slice), after k steps of "
             f"fine-tuning (a fresh LoRA, lr {result.settings.lr:g}, batch {result.settings.batch_size}).")]
    for data, info in relearn.data.items():
        if data not in relearn.curves:
            continue
        rows = [[model, *(_number(v) for v in relearn.values(data, model))] for model in relearn.curves[data]]
        rows.append(["recovery ratio", *(_ratio(r) for r in relearn.ratios[data])])
        lines += ["", f"  on {info['words']} ('{info['set']}', {info['rows']} rows):"]
        lines += ["  " + line for line in _table(["k =", *map(str, relearn.steps)], rows)]
    lines += [f"  not run on {data}: {why}" for data, why in relearn.skipped.items()]
    return lines


def _prompt_lines(result: AuditResult) -> list[str]:
    prompts = result.prompts
    models = list(result.models)
    rows = [[a.label, *(_number(a.value(m)) for m in models), _ratio(a.recovery)] for a in prompts.attacks]
    lines = [f"Prompt attacks ({prompts.seconds:.0f} s): {result.target['label']} on '{result.target['set']}'."]
    lines += ["  " + line for line in _table(["attack", *models, "recovery ratio"], rows)]
    worst = prompts.worst
    if worst is not None:
        lines.append(f"  worst: {worst.label}")
    lines += [f"  not run, {name}: {why}" for name, why in prompts.skipped.items()]
    return lines


def _probe_lines(result: AuditResult) -> list[str]:
    probes = result.probes
    lines = [(f"Probes ({probes.seconds:.0f} s): trained on {probes.train['rows']} rows of '{probes.train['set']}', "
             f"tested on {probes.test['rows']} rows of '{probes.test['set']}'; accuracy per layer.")]
    for position, by_model in probes.accuracy.items():
        rows = [[model, *(_number(v) for v in values)] for model, values in by_model.items()]
        rows.append(["chance", *[_number(probes.chance.get(position))] * len(probes.layers)])
        lines += ["", f"  at the {position}:"] + ["  " + line for line in _table(["", *probes.layers], rows)]
    if probes.lens:
        rows = [[model, *(f"{r:.0f}" for r in lens["median_rank"])] for model, lens in probes.lens.items()]
        lines += ["", "  logit lens, median rank of the value's first token (0 = the top prediction):"]
        lines += ["  " + line for line in _table(["", *probes.layers], rows)]
    elif probes.lens_note:
        lines.append(f"  no logit lens: {probes.lens_note}")
    lines += ["", f"  {'FLAGGED' if probes.flagged else 'not flagged'}: {probes.flag_reason}"]
    return lines


def report_lines(result: AuditResult) -> list[str]:
    """The whole audit as plain text."""
    run_time = f"; the run took {result.run_seconds:.0f} s" if result.run_seconds else ""
    lines = [(f"Audit of run {result.run_id[:8]} ({result.method}, {result.project}), {result.created}: "
             f"{result.seconds:.0f} s{run_time}."),
             "Models: " + "; ".join(f"{name} = {MODEL_WORDS.get(name, name)}" for name in result.models)]
    if result.level:
        lines.append(f"No reference model: ratios compare with {result.level['words']} ({result.level['value']:.3f}).")
    if result.reused:
        lines.append(f"{result.reused} measurements of the original and reference models come from an earlier audit "
                     "of this project (they do not depend on the run).")
    lines += ["", result.verdict.paragraph if result.verdict else "", ""]
    for name, part in (("relearn", _relearn_lines), ("prompts", _prompt_lines), ("probes", _probe_lines)):
        if getattr(result, name) is not None:
            lines += [*part(result), ""]
        elif name in result.skipped:
            lines += [f"{name}: not run: {result.skipped[name]}", ""]
    if result.path is not None:
        lines.append(f"Stored in {result.path}")
    return lines


def card_section(run_dir) -> list[str]:
    """The model card's section on the run's newest audit, or nothing when it has none."""
    result = newest(in_folder(run_dir))
    return card_lines(result) if result is not None else []


def card_lines(result: AuditResult) -> list[str]:
    """The model card's section on an audit (Markdown)."""
    lines = ["## Robustness audit", "",
             (f"Audited on {result.created} with Unlearn Studio (`unlearn-studio audit {result.run_id[:8]}`): "
             f"**{result.verdict.word}**."), "", result.verdict.paragraph, ""]
    relearn = result.relearn
    if relearn is not None:
        at = [k for k in (10, relearn.steps[-1]) if k in relearn.steps]
        lines += ["| relearning on | " + " | ".join(f"ratio after {k} steps" for k in at) + " |",
                  "|---|" + "---|" * len(at)]
        for data, ratios in relearn.ratios.items():
            by_step = dict(zip(relearn.steps, ratios, strict=True))
            lines.append(f"| {relearn.data[data]['words']} | " + " | ".join(_ratio(by_step[k]) for k in at) + " |")
        lines.append("")
    if result.prompts is not None and result.prompts.worst is not None:
        worst = result.prompts.worst
        lines += [f"Worst prompt attack: {worst.label}, recovery ratio {_ratio(worst.recovery)}.", ""]
    if result.probes is not None:
        position, layer, accuracy = result.probes.best("unlearned")
        if layer >= 0:
            lines += [f"Best hidden-state probe on the unlearned model: {result.probes.layers[layer]} ({position}), "
                      f"accuracy {accuracy:.2f} (chance {result.probes.chance.get(position, math.nan):.2f})"
                      + ("; flagged: readable inside, gone from the output." if result.probes.flagged else "."), ""]
    lines += [("A recovery ratio is (unlearned − reference) / (original − reference) on the metric above, each model "
              "under the same attack, with its 95% bootstrap interval: 0 is the level of a model that never saw the "
              "forget data, 1 the model before unlearning."), ""]
    return lines
