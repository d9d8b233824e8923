"""Verdicts and their uncertainty: a before/after change judged against each metric's target."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from unlearn_studio.core.evaluation.result import EvalResult, MetricValue, SetInfo, result_from_payload
from unlearn_studio.core.evaluation.stats import exact_p, interval, significant
from unlearn_studio.core.evaluation.table import format_judgement, markdown_lines
from unlearn_studio.core.evaluation.verdicts import describe, judge

N = 60


def _binary(share: float, n: int = N) -> list[float]:
    ones = round(share * n)
    return [1.0] * ones + [0.0] * (n - ones)


def _metric(key: str, values: list[float], aggregate: str = "proportion", **params) -> MetricValue:
    scope, name = key.rsplit("/", 1)
    return MetricValue.measured(key, name, scope, aggregate, {"values": values}, {"values": scope}, params)


def _result(metrics: list[MetricValue], sets: dict[str, tuple[str, str, str]], reference: list[MetricValue] = (),
            **settings) -> EvalResult:
    infos = {name: SetInfo(role, kind, view, [str(i) for i in range(N)], name.split(".")[0])
             for name, (role, kind, view) in sets.items()}
    return EvalResult("test", "fast", {m.key: m for m in metrics}, infos, {},
                      reference={m.key: m for m in reference}, reference_sets=dict(infos) if reference else {},
                      settings={"tolerance": 0.05, "harm_threshold": 0.05, **settings})


QA = {"forget": ("forget", "qa", "trained"), "retain": ("retain", "qa", "trained"),
      "holdout": ("holdout", "qa", "trained")}


def _verdict(before: list[float], after: list[float], key: str = "forget/value_acc", reference=None,
             aggregate: str = "proportion", sets=QA) -> str | None:
    ref = [_metric(key, reference, aggregate)] if reference is not None else []
    judgement = judge(_result([_metric(key, before, aggregate)], sets, ref),
                      _result([_metric(key, after, aggregate)], sets, ref))
    return judgement.rows[0].verdict


def test_forget_metrics_are_judged_against_the_reference_level():
    reference = [1.0] * 2 + [0.0] * (N - 2)  # a model that never saw the data: 0.03
    assert _verdict(_binary(0.95), _binary(0.05), reference=reference) == "reached"
    assert _verdict(_binary(0.95), _binary(0.5), reference=reference) == "short"
    assert _verdict(_binary(0.5), _binary(0.95), reference=reference) == "wrong_way"
    # Far below a reference level is over-unlearning, never a success.
    high_reference = _binary(0.6)
    assert _verdict(_binary(0.95), [0.0] * N, reference=high_reference) == "overshot"


def test_one_question_of_sixty_is_no_significant_change():
    before = [1.0] * N
    after = [0.0] + [1.0] * (N - 1)  # 1 -> 0.983, the stopped ELM run
    assert _verdict(before, after, reference=_binary(0.25)) == "none"


def test_a_kept_metric_at_chance_that_loses_one_item_is_no_significant_change():
    before = [1.0] + [0.0] * (N - 1)  # holdout value accuracy 0.0167 -> 0, already at chance
    assert _verdict(before, [0.0] * N, key="holdout/value_acc") == "none"


def test_tolerances_scale_with_the_metric():
    # A forget probability of 0.003 that rises by 4% of itself is no move, however significant:
    # the tolerance is a share of the way to the target, not an absolute 0.05.
    rng = np.random.default_rng(0)
    before = list(rng.uniform(0.002, 0.004, N))
    after = [v * 1.04 for v in before]
    reference = [v / 10 for v in before]
    assert _verdict(before, after, key="forget/prob", reference=reference, aggregate="mean") == "none"
    assert _verdict(before, [v / 2 for v in before], key="forget/prob", reference=reference, aggregate="mean") == "short"


def test_kept_metrics_go_wrong_only_when_significantly_worse_than_the_tolerance():
    assert _verdict(_binary(0.98), _binary(0.96), key="retain/value_acc") == "reached"
    assert _verdict(_binary(0.98), _binary(0.5), key="retain/value_acc") == "wrong_way"
    assert _verdict(_binary(0.5), _binary(0.98), key="retain/value_acc") == "reached"  # better is fine
    few = {"retain": ("retain", "qa", "trained")}
    small = judge(_result([_metric("retain/value_acc", [1.0, 1.0, 1.0])], few),
                  _result([_metric("retain/value_acc", [1.0, 1.0, 0.0])], few))
    assert small.rows[0].verdict == "none"  # 1 -> 0.67 on three items is beyond the tolerance, not significant


def test_without_a_reference_the_holdout_set_is_the_target():
    before, after = _result([_metric("forget/value_acc", _binary(0.95)), _metric("holdout/value_acc", _binary(0.02))], QA), \
        _result([_metric("forget/value_acc", _binary(0.4)), _metric("holdout/value_acc", _binary(0.02))], QA)
    row = judge(before, after).rows[0]
    assert row.target.kind == "holdout" and row.target.value == pytest.approx(0.0167, abs=1e-3)
    assert row.verdict == "short"
    # A forget metric without a reference and without a holdout set has no target, and says why.
    alone = {"forget": QA["forget"]}
    row = judge(_result([_metric("forget/rouge_l", [0.9] * N, "mean")], alone),
                _result([_metric("forget/rouge_l", [0.1] * N, "mean")], alone)).rows[0]
    assert row.verdict is None and "reference_model" in row.reason


def test_multiple_choice_forgets_to_chance_and_membership_to_one_half():
    sets = {"saga_mcq": ("forget", "mcq", "trained")}
    before = _metric("saga_mcq/accuracy", _binary(1.0), chance=0.25)
    for after_share, verdict in ((0.27, "reached"), (0.6, "short"), (0.0, "overshot")):
        after = _metric("saga_mcq/accuracy", _binary(after_share), chance=0.25)
        row = judge(_result([before], sets), _result([after], sets)).rows[0]
        assert (row.target.kind, row.verdict) == ("chance", verdict), after_share


def test_harm_falls_under_the_threshold():
    sets = {"harmful": ("harmful", "qa", "trained")}
    assert _verdict(_binary(1.0), _binary(0.0), key="harmful/harmful_rate", sets=sets) == "reached"
    assert _verdict(_binary(1.0), _binary(0.5), key="harmful/harmful_rate", sets=sets) == "short"
    assert _verdict(_binary(0.5), _binary(1.0), key="harmful/harmful_rate", sets=sets) == "wrong_way"


def test_the_paraphrase_is_the_headline_and_the_trained_phrasing_stands_beside_it():
    sets = {**QA, "forget.paraphrase": ("forget", "qa", "paraphrase")}
    metrics = lambda share_trained, share_para: [
        _metric("forget/value_acc", _binary(share_trained)), _metric("forget.paraphrase/value_acc", _binary(share_para))]
    judgement = judge(_result(metrics(1.0, 0.85), sets), _result(metrics(0.0, 0.6), sets))
    headline = [row.key for row in judgement.headline]
    assert headline == ["forget.paraphrase/value_acc"]
    (trained, paraphrase), = judgement.paraphrase
    assert (trained.key, paraphrase.key) == ("forget/value_acc", "forget.paraphrase/value_acc")
    assert paraphrase.label == "forget (paraphrased): value accuracy"
    text = format_judgement(judgement)
    assert "Paraphrase test" in text and "moved as" not in text and "1 -> 0" in text


def test_summary_counts_verdicts_and_the_result_serialises():
    reference = _metric("forget/value_acc", [0.0] * N)
    before = _result([_metric("forget/value_acc", _binary(0.95)), _metric("retain/value_acc", _binary(0.98))], QA,
                     [reference])
    after = _result([_metric("forget/value_acc", _binary(0.03)), _metric("retain/value_acc", _binary(0.5))], QA,
                    [reference])
    judgement = judge(before, after)
    assert judgement.summary == {"reached": 1, "short": 0, "none": 0, "wrong_way": 1, "overshot": 0}
    data = json.loads(json.dumps(judgement.to_dict()))
    row = data["rows"][0]
    assert {"ci", "p_value", "target", "verdict", "label", "meaning", "ideal"} <= row.keys()
    assert row["verdict_text"] == "reached the target" and row["target"]["kind"] == "reference"
    assert markdown_lines(judgement)[0].startswith("2 headline metrics judged")
    # A result written as JSON reads back to the same judgement.
    again = judge(result_from_payload(json.loads(json.dumps(before.payload()))),
                  result_from_payload(json.loads(json.dumps(after.payload()))))
    assert [r.verdict for r in again.rows] == [r.verdict for r in judgement.rows]


def test_describe_gives_each_value_an_interval_and_forget_metrics_their_target():
    reference = _metric("forget/value_acc", [0.0] * N)
    rows = describe(_result([_metric("forget/value_acc", _binary(0.5))], QA, [reference]))
    low, high = rows[0].change_ci
    assert low < 0.5 < high and rows[0].target.value == 0.0 and rows[0].gap_ci[0] > 0


# ---- the statistics ---------------------------------------------------------------------------


def test_mcnemar_counts_only_the_discordant_pairs():
    before = _metric("forget/value_acc", [1.0] * 10 + [0.0] * 10 + [1.0] * 40)
    after = _metric("forget/value_acc", [0.0] * 10 + [1.0] * 2 + [0.0] * 8 + [1.0] * 40)
    assert exact_p(after, before, paired=True) == pytest.approx(binomtest(2, 12, 0.5).pvalue)
    assert exact_p(before, before, paired=True) == 1.0
    assert exact_p(after, 0.5) == pytest.approx(binomtest(42, 60, 0.5).pvalue)
    assert exact_p(_metric("forget/prob", [0.5] * 5, "mean"), before) is None  # not a proportion


def test_paired_intervals_are_narrower_for_paired_items_and_cover_the_change():
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.2, N)
    before = _metric("forget/prob", list(base), "mean")
    after = _metric("forget/prob", list(base - 0.1 + rng.normal(0, 0.01, N)), "mean")
    paired = interval(after, before, paired=True)
    unpaired = interval(after, before, paired=False)
    assert paired[0] < -0.1 < paired[1] and paired[1] - paired[0] < (unpaired[1] - unpaired[0]) / 5
    assert significant(None, paired) and not significant(None, (-0.1, 0.1))
    assert significant(0.01, (math.nan, math.nan)) and not significant(0.2, (0.1, 0.2))


def test_intervals_recompute_set_level_statistics():
    members = MetricValue.measured("forget/mia_auc_min_k", "mia_auc_min_k", "forget", "auc",
                                   {"members": [1.0, 2.0, 3.0, 4.0], "nonmembers": [0.0, 0.5, 1.5, 2.5]},
                                   {"members": "forget", "nonmembers": "holdout"})
    assert members.value == pytest.approx(13 / 16)
    low, high = interval(members)
    assert 0 <= low <= members.value <= high <= 1
