"""The Audit tab: a stored audit drawn (verdict, relearning curves of the three models, a bar per
prompt attack, probes by layer), and a finished run audited from the tab with progress, Cancel,
and the result kept with the run."""

from __future__ import annotations

import pytest

from unlearn_studio.core.evaluation.result import MetricValue
from unlearn_studio.core.results.audit.probes import PROMPT, VALUE, ProbesResult
from unlearn_studio.core.results.audit.prompt_attacks import AttackResult, PromptsResult
from unlearn_studio.core.results.audit.recovery import between_models
from unlearn_studio.core.results.audit.relearn import DATA_WORDS, RelearnResult
from unlearn_studio.core.results.audit.result import AuditResult
from unlearn_studio.core.results.audit.settings import AuditSettings
from unlearn_studio.core.results.audit.verdict import judge_audit
from unlearn_studio.gui.audit_view import AuditView
from unlearn_studio.gui.jobs import Jobs

WAIT_MS = 600_000
MODELS = ("original", "unlearned", "reference")
STEPS = [0, 5, 10, 25, 50]
SMALL = AuditSettings(steps=(0, 2, 4), items=6, samples=2, shots=2)


def accuracy(share: float, items: int = 20) -> MetricValue:
    hits = round(share * items)
    return MetricValue.measured("forget/value_acc", "value_acc", "forget", "proportion",
                                {"values": [1.0] * hits + [0.0] * (items - hits)}, {"values": "forget"})


def made_up_audit() -> AuditResult:
    """An audit whose unlearned model comes back on the forget slice (0.05 → 0.6) and holds elsewhere."""
    target = {"set": "forget.paraphrase", "source": "forget", "view": "paraphrase", "kind": "qa", "role": "forget",
              "metric": "value_acc", "rows": 180, "label": "value accuracy"}
    climbs = {"original": [0.9] * 5, "unlearned": [0.05, 0.2, 0.35, 0.5, 0.6], "reference": [0.05] * 5}
    flat = {"original": [0.9, 0.9, 0.85, 0.85, 0.8], "unlearned": [0.05] * 5, "reference": [0.05] * 5}
    relearn = RelearnResult("value_acc", STEPS, {"set": "forget.paraphrase outside the slice", "items": 20,
                                                 "left_out": 18},
                            {name: {"words": words, "set": name, "rows": 18, "template": "qa"}
                             for name, words in DATA_WORDS.items()})
    for data, shape in (("forget_slice", climbs), ("related", flat), ("general", flat)):
        relearn.curves[data] = {m: [{"value_acc": accuracy(v)} for v in shape[m]] for m in MODELS}
        relearn.ratios[data] = [between_models({m: relearn.curves[data][m][k]["value_acc"] for m in MODELS}, None)
                                for k in range(len(STEPS))]
    prompts = PromptsResult("value_acc")
    for name, label, unlearned in (("as_evaluated", "held-out paraphrase", 0.05), ("trained", "trained phrasing", 0.2),
                                   ("framing", "expert framing", 0.05), ("few_shot", "few-shot (same subject first)", 0.1),
                                   ("template_chat", "template chat", 0.0), ("sampling", "sampling", 0.3)):
        values = {"original": accuracy(0.85), "unlearned": accuracy(unlearned), "reference": accuracy(0.05)}
        prompts.attacks.append(AttackResult(name, label, values, between_models(values, None)))
    layers = ["embeddings", "layer 1", "layer 2", "layer 3", "layer 4"]
    probes = ProbesResult(layers, {"set": "retain", "rows": 900}, {"set": "forget", "rows": 60, "unseen": 0},
                          {PROMPT: 0.02, VALUE: 0.02},
                          {PROMPT: {m: [0.02, 0.05, 0.06, 0.06, 0.06] for m in MODELS},
                           VALUE: {"original": [0.03, 0.3, 0.4, 0.45, 0.5], "unlearned": [0.03, 0.1, 0.1, 0.12, 0.1],
                                   "reference": [0.03, 0.02, 0.02, 0.03, 0.03]}},
                          {m: {"median_rank": [800, 5, 2, 0, 0], "top1": [0, 0.4, 0.6, 0.9, 0.95],
                               "top10": [0, 0.8, 0.9, 1, 1]} for m in MODELS},
                          output={"unlearned": 0.2, "reference": 0.02}, flag_reason="best probe 0.12")
    verdict = judge_audit(target, "value accuracy", relearn, prompts, probes, True)
    return AuditResult("a1b2c3d4e5", "npo", "Demo", AuditSettings(), target,
                       {m: m for m in MODELS}, None, relearn, prompts, probes, {}, verdict, 212.0, 61.0)


def test_an_audit_shows_its_verdict_curves_bars_and_probes(qtbot, screenshots):
    view = AuditView(Jobs())
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    result = made_up_audit()
    assert result.verdict.word == "partly"  # back after 25 steps of the slice: not quick, but not held
    view.status = "finished"
    view.show_result(result)
    assert view.verdict.isVisible() and view.verdict.text() == result.verdict.paragraph
    assert "#fff4d6" in view.verdict.styleSheet()  # partly: amber
    assert view.audit_button.text() == "Audit again"
    assert sorted(view.recovery.plots) == ["forget_slice", "general", "related"]
    slice_plot = view.recovery.plots["forget_slice"]
    assert slice_plot.legend.names() == list(MODELS)
    assert "k=50: 0.65" in view.recovery.notes["forget_slice"].text()  # (0.6 − 0.05) / (0.9 − 0.05)
    bars = {bar.opts["brush"]: list(bar.opts["height"]) for bar in view.attacks.bars}
    assert len(view.attacks.bars) == 3 and len(view.attacks.labels) == 6
    assert list(bars.values())[1] == [0.05, 0.2, 0.05, 0.1, 0.0, 0.3]  # the unlearned model's bars
    assert view.attacks.ratios[-1].startswith("0.31")  # sampling: (0.3 − 0.05) / (0.85 − 0.05)
    assert view.probes.accuracy.legend.names() == [*MODELS, "chance"]
    for index, name in enumerate(("relearning", "prompts", "probes")):
        view.tabs.setCurrentIndex(index)
        screenshots(view, f"audit_{name}")


def test_a_run_that_did_not_save_an_adapter_cannot_be_audited(qtbot):
    view = AuditView(Jobs())
    qtbot.addWidget(view)
    view.status = "cancelled"
    view.show_result(None)
    assert not view.audit_button.isEnabled() and "only a run that saved its adapter" in view.heading.text()
    assert not view.tabs.isVisible()


@pytest.mark.slow
def test_audit_a_finished_run_from_its_tab(qtbot, window, start_short_run, screenshots, monkeypatch):
    monkeypatch.setattr("unlearn_studio.core.results.audit.audit.AuditSettings", lambda: SMALL)
    _project, session = start_short_run(window, steps=6, suite="none", reference=True)
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        pass
    view = window.runs.audit
    window.runs.details.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.run_id == session.run_id and view.status == "finished"
                    and view.audit_button.isEnabled(), timeout=WAIT_MS)
    assert "has not been audited" in view.heading.text()
    progress = []
    view.progress.valueChanged.connect(progress.append)
    with qtbot.waitSignal(view.shown, timeout=WAIT_MS):
        view.audit_button.click()
        assert view.cancel_button.isVisible() and not view.audit_button.isEnabled()
    assert progress and view.result is not None, view.heading.text()
    # Six steps at a low learning rate barely move the model: before any attack it is where it was.
    assert view.result.verdict.word in ("not forgotten", "partly")
    assert "#fde2c8" in view.verdict.styleSheet() or "#fff4d6" in view.verdict.styleSheet()
    assert [a["kind"] for a in window.store.artifacts(session.run_id)].count("audit") == 1
    for index, name in enumerate(("relearning", "prompts", "probes")):
        view.tabs.setCurrentIndex(index)
        screenshots(window, f"audit_tab_{name}")
    # Selected again, the run shows its newest audit.
    window.runs.select_run(session.run_id, reload=True)
    qtbot.waitUntil(lambda: view.result is not None and view.result.path is not None, timeout=WAIT_MS)


@pytest.mark.slow
def test_a_cancelled_audit_records_nothing(qtbot, window, start_short_run, monkeypatch):
    monkeypatch.setattr("unlearn_studio.core.results.audit.audit.AuditSettings", lambda: SMALL)
    _project, session = start_short_run(window, steps=6, suite="none", reference=True)
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        pass
    view = window.runs.audit
    qtbot.waitUntil(lambda: view.run_id == session.run_id and view.audit_button.isEnabled(), timeout=WAIT_MS)
    view.progress.valueChanged.connect(lambda _: view.cancel_button.isEnabled() and view.cancel_button.click())
    with qtbot.waitSignal(window.jobs.job_ended, timeout=WAIT_MS,
                          check_params_cb=lambda job: job.name.startswith("Auditing")):
        view.audit_button.click()
    assert "cancelled; nothing was recorded" in view.heading.text()
    assert view.result is None and view.audit_button.isEnabled()
    assert not [a for a in window.store.artifacts(session.run_id) if a["kind"] == "audit"]
