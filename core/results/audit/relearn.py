"""The relearning attack: does the forgotten knowledge come back after a few steps of fine-tuning?

Each model (original, unlearned, reference) is fine-tuned through a fresh LoRA adapter (the run's
adapter stays on the unlearned model, untouched) for up to the last of ``settings.steps`` steps on
each attack data, with the same seed, data order and settings for every model:

- "forget_slice": a seeded slice of the run's forget data (``slice_share`` of its rows, listed in
  the result), the benign-relearning attack of Hu et al. (arXiv 2406.13356);
- "related": data related to it without the forget facts (the retain or normal set);
- "general": unrelated general text.

After each step count k the target's headline metric is measured on the target's items that are
not in the slice (core/results/audit/targets.py says how "in the slice" is decided). The ratio at
each k compares the three models (core/results/audit/recovery.py).

The fine-tune is a plain loop here rather than the run engine's ``execute``: ``execute`` loads its
own model from the project's folder and attaches one fresh adapter, while the attack needs the
run's adapter kept under the fresh one on the base already loaded for all three models, a
measurement after k = 5, 10 and 25 steps inside one fine-tune, and no run record or folder for
each of its nine fine-tunes. It uses the run engine's data stream and the methods' SFT loss.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from unlearn_studio.core.data.templates import pad_token_id_for, tokenize_rows
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.result import MetricValue
from unlearn_studio.core.evaluation.scoring import item_id, template_for
from unlearn_studio.core.evaluation.suite import LoadedSet
from unlearn_studio.core.methods.base import forward_logits
from unlearn_studio.core.methods.losses import mean_answer_ce
from unlearn_studio.core.model.generate import model_device
from unlearn_studio.core.results.audit.measuring import TRAINING_PASSES, AuditMeter, lean
from unlearn_studio.core.results.audit.models import AuditModels
from unlearn_studio.core.results.audit.recovery import Recovery, between_models
from unlearn_studio.core.results.audit.reuse import Reuse, rows_digest
from unlearn_studio.core.results.audit.settings import RELEARN, AuditSettings
from unlearn_studio.core.results.audit.targets import Target, outside_slice, take_slice, with_rows
from unlearn_studio.core.run.data import RoleStream

SLICE = "forget_slice"
DATA_WORDS = {SLICE: "a slice of the forget data", "related": "related data without the forget facts",
              "general": "unrelated general text"}
MAX_GRAD_NORM = 1.0


Measured = dict[str, MetricValue]  # one measurement: metric name -> value (with its items)


@dataclass
class RelearnResult:
    metric: str  # the headline metric the ratios are of
    steps: list[int]
    measured: dict  # the items measured after each k: set, count, how many the slice left out
    data: dict[str, dict]  # attack data -> where it comes from, its rows and template
    curves: dict[str, dict[str, list[Measured]]] = field(default_factory=dict)  # data -> model -> one per k
    ratios: dict[str, list[Recovery]] = field(default_factory=dict)  # data -> one per k
    skipped: dict[str, str] = field(default_factory=dict)  # attack data -> why it was not used
    seconds: float = 0.0

    def to_dict(self) -> dict:
        curves = {d: {m: [{k: v.to_dict() for k, v in point.items()} for point in points]
                      for m, points in by_model.items()} for d, by_model in self.curves.items()}
        return {"metric": self.metric, "steps": self.steps, "measured": self.measured, "data": self.data,
                "skipped": self.skipped, "curves": curves,
                "ratios": {d: [r.to_dict() for r in values] for d, values in self.ratios.items()},
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict) -> RelearnResult:
        curves = {d: {m: [{k: MetricValue.from_dict(k, v) for k, v in point.items()} for point in points]
                      for m, points in by_model.items()} for d, by_model in data["curves"].items()}
        ratios = {d: [Recovery.from_dict(r) for r in values] for d, values in data["ratios"].items()}
        return cls(data["metric"], list(data["steps"]), data["measured"], data["data"], curves, ratios,
                   dict(data["skipped"]), float(data["seconds"]))

    def values(self, data: str, model: str) -> list[float]:
        """The headline metric of ``model`` after each k steps on ``data`` (NaN where not measured)."""
        points = self.curves.get(data, {}).get(model, [])
        return [point[self.metric].value if self.metric in point else math.nan for point in points]


class Relearning:
    """The attack on one target, planned (``units``) before it runs (``run``)."""

    def __init__(self, models: AuditModels, meter: AuditMeter, target: Target, forgotten: LoadedSet,
                 sources: dict[str, LoadedSet], missing: dict[str, str], settings: AuditSettings, max_length: int,
                 reuse: Reuse | None = None):
        self.models, self.meter, self.settings, self.metric = models, meter, settings, target.metric
        self.reuse = reuse
        taken = take_slice(forgotten.rows, settings.slice_share, settings.seed)
        kept, left_out = outside_slice(target.loaded, forgotten, taken)
        self.measured = lean(with_rows(target.loaded, kept[:settings.items], f"{target.name} outside the slice"))
        self.data_sets = {SLICE: with_rows(forgotten, [forgotten.rows[i] for i in taken], "forget slice"),
                          **sources}
        tokenizer = models.tokenizer
        self.examples, self.data, self.skipped = {}, {}, dict(missing)
        for name, source in self.data_sets.items():
            template = template_for(source, tokenizer)
            examples, _ = tokenize_rows(source.rows, template, tokenizer, max_length)
            self.examples[name] = examples
            self.data[name] = {"words": DATA_WORDS[name], "set": source.spec.name, "rows": len(source.rows),
                               "template": template}
        self.data[SLICE]["ids"] = [item_id(forgotten.rows[i], i) for i in taken]
        self.data[SLICE]["share"] = settings.slice_share
        self.summary = {"set": target.name, "items": len(self.measured.rows), "left_out": left_out}
        if not self.measured.rows:
            raise UserError(f"Every item of the set '{target.name}' is in the relearning slice, so nothing is left "
                            "to measure after relearning.", "Use a smaller slice of the forget data.")

    @property
    def last_step(self) -> int:
        return self.settings.steps[-1]

    def units(self) -> int:
        n_models, steps = len(self.models.names), self.settings.steps
        per_measure = self.meter.units(self.measured)
        training = self.last_step * self.settings.batch_size * TRAINING_PASSES
        per_run = training + per_measure * len([k for k in steps if k > 0])
        return n_models * (per_measure + len(self.examples) * per_run)

    def run(self, floor: MetricValue | float | None) -> RelearnResult:
        started = time.monotonic()
        result = RelearnResult(self.metric, list(self.settings.steps), self.summary, self.data,
                               skipped=self.skipped)
        self.models.reset()
        untrained = {name: self._untrained(name) for name in self.models.names}
        try:
            for data_name in self.examples:
                result.curves[data_name] = {name: self._fine_tune(name, data_name, untrained[name])
                                            for name in self.models.names}
                result.ratios[data_name] = self._ratios(result.curves[data_name], floor)
        finally:
            self.models.reset()
        result.seconds = time.monotonic() - started
        return result

    def _measure(self, model_name: str, when: str, relearning: bool = False) -> Measured:
        model = self.models.use(model_name, relearning=relearning)
        return self.meter.measure(model, self.measured, f"{model_name} model, {when}")

    def _reuse_key(self, model_name: str, *what) -> str | None:
        if self.reuse is None:
            return None
        return self.reuse.key(model_name, "relearn", self.metric, rows_digest(self.measured), *what)

    def _untrained(self, model_name: str) -> Measured:
        key = self._reuse_key(model_name, "step 0")
        kept = self.reuse.get(key) if key else None
        if kept:
            self.meter.skip(self.meter.units(self.measured))
            return kept[0]
        measured = self._measure(model_name, "step 0")
        if key:
            self.reuse.put(key, [measured])
        return measured

    def _fine_tune(self, model_name: str, data_name: str, untrained: Measured) -> list[Measured]:
        """The model's metrics after each k steps on ``data_name`` (k = 0: ``untrained``), taken from
        an earlier audit of the project where the model does not depend on the run."""
        key = self._reuse_key(model_name, data_name, [example["input_ids"] for example in self.examples[data_name]])
        kept = self.reuse.get(key) if key else None
        if kept is not None and len(kept) == len(self.settings.steps) - 1:
            self.meter.skip(self.last_step * self.settings.batch_size * TRAINING_PASSES
                            + self.meter.units(self.measured) * len(kept))
            return [untrained, *kept]
        curve = self._train_and_measure(model_name, data_name, untrained)
        if key:
            self.reuse.put(key, curve[1:])
        return curve

    def _train_and_measure(self, model_name: str, data_name: str, untrained: Measured) -> list[Measured]:
        settings, models = self.settings, self.models
        models.reset()
        model = models.use(model_name, relearning=True)
        parameters = models.relearning_parameters(model)
        optimizer = torch.optim.AdamW(parameters, lr=settings.lr)
        stream = RoleStream(data_name, self.examples[data_name], settings.batch_size, settings.seed,
                            pad_token_id_for(models.tokenizer))
        device = model_device(model)
        curve = [untrained]
        what = f"{model_name} model on {DATA_WORDS[data_name]}"
        self.meter.begin(RELEARN, what, self.last_step, self.last_step * settings.batch_size * TRAINING_PASSES)
        for step in range(1, self.last_step + 1):
            batch = stream.next_batch().to(device)
            model.train()
            loss = mean_answer_ce(forward_logits(model, batch), batch.labels)
            if not math.isfinite(float(loss.detach())):
                raise UserError(f"The relearning fine-tune of the {model_name} model diverged at step {step} "
                                f"(loss {float(loss.detach())}).", "Audit again with a lower relearning learning rate.")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            model.eval()
            self.meter.advance(len(batch.input_ids) * TRAINING_PASSES)
            if step in settings.steps:
                curve.append(self._measure(model_name, f"{DATA_WORDS[data_name]}, step {step}", relearning=True))
                self.meter.begin(RELEARN, what, self.last_step, 0)
        return curve

    def _ratios(self, curves: dict[str, list[Measured]], floor: MetricValue | float | None) -> list[Recovery]:
        return [between_models({name: curve[index][self.metric] for name, curve in curves.items()
                                if self.metric in curve[index]}, floor)
                for index in range(len(self.settings.steps))]
