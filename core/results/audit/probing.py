"""The probes run: which rows the probes learn from and are tested on, the hidden states of each
model, the probes and the logit lens per layer, each model's greedy answers on the same rows, and
the flag (core/results/audit/probes.py says what each means).
"""

from __future__ import annotations

import math
import time

from unlearn_studio.core.evaluation.scoring import template_for
from unlearn_studio.core.evaluation.suite import TRAINED, LoadedSet
from unlearn_studio.core.results.audit import logit_lens
from unlearn_studio.core.results.audit.hidden import hidden_states
from unlearn_studio.core.results.audit.measuring import AuditMeter, lean
from unlearn_studio.core.results.audit.models import REFERENCE, UNLEARNED, AuditModels
from unlearn_studio.core.results.audit.probes import PROMPT, VALUE, ProbesResult, fit_probes
from unlearn_studio.core.results.audit.settings import PROBES, AuditSettings
from unlearn_studio.core.results.audit.targets import Target, file_columns, forgotten_set, with_rows

MAX_TRAIN_ROWS = 900  # of the demo's 1620 retain rows; probes on the original model: 0.42 accurate, 0.52 on all
GROUP_COLUMN = "attribute"  # rows with one attribute share one closed set of values


def _valued(loaded: LoadedSet | None) -> bool:
    return loaded is not None and loaded.kind == "qa" and all(row.get("value") for row in loaded.rows)


def probe_sets(config, loaded: list[LoadedSet], target: Target, items: int) -> tuple[LoadedSet, LoadedSet] | str:
    """(retain rows to train on, the first ``items`` forget rows to test on), or why the run's data
    has none."""
    forgotten = forgotten_set(config, loaded)
    test = next((s for s in (forgotten, target.trained, target.loaded) if _valued(s) and s.role == "forget"), None)
    if test is None:
        return ("the forget data has no value column (facts from a closed set of values), so a probe has no "
                "value to read")
    retain = [s for s in loaded if s.role == "retain" and s.view == TRAINED and _valued(s)]
    if not retain:
        return "the project has no retain set with a value column to train the probes on"
    train = next((s for s in retain if s.spec.name == "retain"), retain[0])
    return lean(with_rows(train, train.rows[:MAX_TRAIN_ROWS])), lean(with_rows(test, test.rows[:items]))


def _groups(loaded: LoadedSet) -> list[str]:
    return [str(columns.get(GROUP_COLUMN, "")) for columns in file_columns(loaded)]


class Probing:
    """The probes on one run's data, planned (``units``) before they run (``run``)."""

    def __init__(self, models: AuditModels, meter: AuditMeter, train: LoadedSet, test: LoadedSet,
                 settings: AuditSettings):
        self.models, self.meter, self.train, self.test, self.settings = models, meter, train, test, settings
        self.judged = [m for m in (UNLEARNED, REFERENCE) if m in models.names]  # whose answers decide "gone"

    def units(self) -> int:
        rows = len(self.train.rows) + len(self.test.rows)
        return rows * len(self.models.names) + self.meter.units(self.test, len(self.test.rows)) * len(self.judged)

    def run(self) -> ProbesResult:
        started = time.monotonic()
        tokenizer, train, test = self.models.tokenizer, self.train, self.test
        labels = {"train": ([r["value"] for r in train.rows], _groups(train)),
                  "test": ([r["value"] for r in test.rows], _groups(test))}
        layers = ["embeddings"] + [f"layer {i}" for i in range(1, self.models.layer_count + 1)]
        result = ProbesResult(layers, {"set": train.name, "rows": len(train.rows)},
                              {"set": test.name, "rows": len(test.rows)})
        for name in self.models.names:
            model = self.models.use(name)
            rows = len(train.rows) + len(test.rows)
            self.meter.begin(PROBES, f"{name} model: hidden states", rows, rows)
            learned = hidden_states(model, tokenizer, train.rows, template_for(train, tokenizer), self.meter.advance)
            tested = hidden_states(model, tokenizer, test.rows, template_for(test, tokenizer), self.meter.advance)
            for position, (x, z) in {PROMPT: (learned.prompt, tested.prompt),
                                     VALUE: (learned.value, tested.value)}.items():
                keep_x = range(len(train.rows)) if position == PROMPT else learned.valued
                keep_z = range(len(test.rows)) if position == PROMPT else tested.valued
                if not keep_x or not keep_z:
                    continue
                fit = fit_probes(x, *_picked(labels["train"], keep_x), z, *_picked(labels["test"], keep_z))
                result.accuracy.setdefault(position, {})[name] = fit.accuracy
                result.chance[position] = fit.chance
                result.test.setdefault("unseen", fit.unseen)
            ranks = logit_lens.value_ranks(model, tested)
            if ranks is None:
                result.lens_note = "no final norm beside the decoder layers, or no answer states its value"
            else:
                result.lens[name] = logit_lens.summary(ranks)
            if name in self.judged:
                measured = self.meter.measure(model, test, f"{name} model, answers", items=len(test.rows))
                result.output[name] = measured["value_acc"].value if "value_acc" in measured else math.nan
        self._flag(result)
        result.seconds = time.monotonic() - started
        return result

    def _flag(self, result: ProbesResult) -> None:
        s = self.settings
        level = result.output.get(REFERENCE, 0.0)
        output = result.output.get(UNLEARNED, math.nan)
        position, layer, accuracy = result.best(UNLEARNED)
        lens_layer, lens_share = result.best_lens(UNLEARNED)
        gone = math.isfinite(output) and output <= level + s.gone_margin
        readable = accuracy >= s.probe_flag or (math.isfinite(lens_share) and lens_share >= s.probe_flag)
        result.flagged = gone and readable
        where = "the reference model's" if REFERENCE in result.output else "none (no reference model)"
        lens = (f"; the logit lens ranks the value first for {lens_share:.3f} of the rows at "
                f"{result.layers[lens_layer]}" if lens_layer >= 0 else "")
        result.flag_reason = (f"greedy value accuracy {output:.3f} ({where} {level:.3f}, margin {s.gone_margin}); "
                              f"best probe: {result.layers[layer]}, {position}, {accuracy:.3f}{lens} "
                              f"(flag at {s.probe_flag})" if layer >= 0 else "no probe could be fitted")


def _picked(labels: tuple[list[str], list[str]], rows) -> tuple[list[str], list[str]]:
    values, groups = labels
    return [values[i] for i in rows], [groups[i] for i in rows]
