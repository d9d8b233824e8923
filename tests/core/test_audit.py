"""The robustness audit on a finished demo run: the three models on one loaded base are the models
they stand for (before and after a relearning fine-tune), the stored ratios are those of the stored
values, the measurements agree with the evaluation's, sampling, the logit lens, a cancel, and the
model card's section."""

from __future__ import annotations

import math

import pytest
import torch
from audited_run import audited_run

from unlearn_studio.core.control import Cancelled
from unlearn_studio.core.evaluation.measure import measure
from unlearn_studio.core.evaluation.passes import ModelPasses
from unlearn_studio.core.evaluation.suite import EvalSuite
from unlearn_studio.core.model.loading import load_adapter, load_model
from unlearn_studio.core.paths import demo_retain_model_dir
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.results.audit import result as stored
from unlearn_studio.core.results.audit.audit import audit_run
from unlearn_studio.core.results.audit.hidden import encode, hidden_states
from unlearn_studio.core.results.audit.logit_lens import value_ranks
from unlearn_studio.core.results.audit.measuring import AuditMeter, audit_sizes, lean
from unlearn_studio.core.results.audit.models import ORIGINAL, REFERENCE, UNLEARNED, AuditModels
from unlearn_studio.core.results.audit.sampling import sampled
from unlearn_studio.core.results.audit.settings import AuditSettings
from unlearn_studio.core.results.audit.targets import choose_target
from unlearn_studio.core.results.audit.text import card_section, report_lines

SMALL = AuditSettings(steps=(0, 2, 4), items=6, samples=2, shots=2)
PROMPT = "### Question: Where was Alelle Yewton born?\n### Answer:"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return audited_run(tmp_path_factory, "audit_run")


@pytest.fixture(scope="module")
def models(run):
    config = run.trained.config
    return AuditModels(config, run.trained.adapter_dir, reference_dir=demo_retain_model_dir(), rank=4, seed=0)


@pytest.fixture(scope="module")
def target(run):
    """The set the audit attacks on the run's project (the forget person's held-out paraphrases)."""
    config = run.trained.config
    suite = EvalSuite.for_config(config)
    return choose_target(config, suite, suite.load())


def logits(model, tokenizer, text: str = PROMPT) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits


@pytest.mark.slow
def test_the_three_models_on_one_base_are_the_models_they_stand_for(run, models):
    config = run.trained.config
    base = load_model(config.resolve_model_path())
    unlearned = load_adapter(load_model(config.resolve_model_path()).model, run.trained.adapter_dir)
    reference = load_model(demo_retain_model_dir())
    expected = {ORIGINAL: base.model, UNLEARNED: unlearned, REFERENCE: reference.model}
    tokenizer = models.tokenizer
    for name, model in expected.items():
        assert torch.equal(logits(models.use(name), tokenizer), logits(model, tokenizer)), name
    # A relearning fine-tune changes only the relearning adapter; reset brings every model back.
    run_adapter = {n: p.clone() for n, p in models.base.named_parameters() if ".unlearned." in n}
    model = models.use(UNLEARNED, relearning=True)
    trainable = models.relearning_parameters(model)
    assert trainable and all(p.requires_grad for p in trainable)
    assert sum(p.requires_grad for p in model.parameters()) == len(trainable)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    batch = tokenizer(PROMPT + " Alelle Yewton was born in Kestrel Ford.", return_tensors="pt")
    for _ in range(3):
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert not torch.equal(logits(models.use(UNLEARNED, relearning=True), tokenizer),
                           logits(expected[UNLEARNED], tokenizer))
    assert all(torch.equal(p, run_adapter[n]) for n, p in models.base.named_parameters() if n in run_adapter)
    models.reset()
    for name, model in expected.items():
        assert torch.equal(logits(models.use(name, relearning=True), tokenizer), logits(model, tokenizer)), name


@pytest.mark.slow
def test_the_audits_value_accuracy_is_the_evaluations(run, models, target):
    meter = AuditMeter(models.tokenizer, None, 6)
    ours = meter.measure(models.use(ORIGINAL), lean(target.loaded), "original")
    base = load_model(run.trained.config.resolve_model_path())
    theirs = measure(ModelPasses(base.model, base.tokenizer), [lean(target.loaded)], lambda _: audit_sizes(6), None)
    assert ours["value_acc"].groups == theirs.metrics[f"{target.name}/value_acc"].groups
    assert ours["prob"].value == pytest.approx(theirs.metrics[f"{target.name}/prob"].value, abs=1e-6)


@pytest.mark.slow
def test_sampling_near_temperature_zero_answers_as_greedy_does(models, target):
    meter = AuditMeter(models.tokenizer, None, 6)
    model = models.use(ORIGINAL)
    greedy = meter.measure(model, lean(target.loaded), "greedy")["value_acc"]
    drawn = sampled(model, meter, lean(target.loaded), "value_acc", samples=2, temperature=1e-4, seed=0, judge=None,
                    what="sampled")
    assert drawn.groups == greedy.groups


@pytest.mark.slow
def test_the_logit_lens_last_layer_ranks_what_the_model_predicts(run, models):
    config = run.trained.config
    suite = EvalSuite.for_config(config)
    forget = next(s for s in suite.load() if s.name == "forget")
    model = models.use(ORIGINAL)
    states = hidden_states(model, models.tokenizer, forget.rows, "qa")
    ranks = value_ranks(model, states)
    assert states.valued and ranks.shape == (states.value.shape[1], len(states.valued))
    for column, row_index in enumerate(states.valued):
        encoded = encode(forget.rows[row_index], "qa", models.tokenizer)
        with torch.no_grad():
            predicted = model(input_ids=torch.tensor([encoded.ids])).logits[0, encoded.value_at - 1]
        value_id = encoded.ids[encoded.value_at]
        assert value_id == states.value_ids[column]
        assert int(ranks[-1, column]) == int((predicted > predicted[value_id]).sum())


@pytest.mark.slow
def test_an_audit_is_stored_with_the_run_and_its_ratios_are_its_values(run):
    events = []
    with Store.open(run.store_path) as store:
        result = audit_run(store, run.run_id, SMALL, progress=events.append)
        assert [a["kind"] for a in store.artifacts(run.run_id)].count("audit") == 1
        again = stored.latest(store, run.run_id)
    assert again.path == result.path and again.payload() == result.payload()
    assert events and all(e.run_id == run.run_id for e in events) and events[-1].done <= events[-1].total
    assert set(result.models) == {ORIGINAL, UNLEARNED, REFERENCE}
    relearn = result.relearn
    assert relearn.steps == [0, 2, 4] and set(relearn.curves) == {"forget_slice", "related", "general"}
    for data, by_model in relearn.curves.items():
        for index, ratio in enumerate(relearn.ratios[data]):
            u, o, r = (by_model[m][index][relearn.metric].value for m in (UNLEARNED, ORIGINAL, REFERENCE))
            if abs(o - r) >= 0.05:
                assert ratio.ratio == pytest.approx((u - r) / (o - r))
            else:
                assert math.isnan(ratio.ratio) and ratio.reason
    # Before any relearning the three models are as they are: the curves start where the models stand.
    starts = {m: relearn.values("forget_slice", m)[0] for m in result.models}
    assert all(relearn.values(data, m)[0] == starts[m] for data in relearn.curves for m in result.models)
    assert result.prompts.attacks and result.probes.layers[0] == "embeddings"
    assert result.verdict.word in ("robust", "partly", "shallow", "not forgotten") and result.verdict.paragraph
    text = "\n".join(report_lines(result))
    assert "Relearning" in text and "Prompt attacks" in text and "Probes" in text
    section = "\n".join(card_section(run.folder / run.run_id))
    assert section.startswith("## Robustness audit") and f"**{result.verdict.word}**" in section


@pytest.mark.slow
def test_a_cancelled_audit_records_nothing(run):
    events = []
    with Store.open(run.store_path) as store:
        before = store.artifacts(run.run_id)
        with pytest.raises(Cancelled):
            audit_run(store, run.run_id, SMALL, progress=events.append, should_stop=lambda: len(events) > 3)
        assert store.artifacts(run.run_id) == before
    assert len(stored.in_folder(run.folder / run.run_id)) == len([a for a in before if a["kind"] == "audit"])


@pytest.mark.slow
def test_a_later_audit_of_the_project_reuses_the_original_and_reference_measurements(run, tmp_path):
    settings = AuditSettings(attacks=("relearn", "prompts"), steps=(0, 2), items=6, samples=2, shots=2)
    with Store.open(run.store_path) as store:
        first = audit_run(store, run.run_id, settings, record=False, reuse_dir=tmp_path)
        kept = sorted(tmp_path.glob("*.json"))
        second = audit_run(store, run.run_id, settings, record=False, reuse_dir=tmp_path)
        fresh = audit_run(store, run.run_id, settings, record=False, reuse=False)
    # The first keeps one entry per measurement of the two run-independent models; the second takes
    # them all (and only those: the unlearned model is measured again) and writes nothing new.
    attacks = len(first.prompts.attacks)
    assert first.reused == 0 and len(kept) == 2 * (1 + len(first.relearn.curves) + attacks)
    assert second.reused == len(kept) and sorted(tmp_path.glob("*.json")) == kept
    assert f"{len(kept)} measurements of the original and reference models" in "\n".join(report_lines(second))
    for result in (first, second):
        assert result.relearn.to_dict()["curves"] == fresh.relearn.to_dict()["curves"]
        assert [a.to_dict() for a in result.prompts.attacks] == [a.to_dict() for a in fresh.prompts.attacks]
