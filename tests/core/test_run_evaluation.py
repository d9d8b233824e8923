"""The before/after table: which metrics are shown and whether each moved the right way."""

import math

from unlearn_studio.core.evaluation.run_evaluation import Comparison, compare, format_table


def test_verdicts_follow_the_expected_direction():
    assert Comparison("forget/value_acc", "", 0.9, 0.1, "down").verdict == "ok"
    assert Comparison("forget/value_acc", "", 0.1, 0.9, "down").verdict == "bad"
    assert Comparison("forget/value_acc", "", 0.5, 0.5, "down").verdict == "bad"  # no change is no unlearning
    assert Comparison("forget_quality_log10", "", -12.0, -1.0, "up").verdict == "ok"
    assert Comparison("retain/value_acc", "", 0.98, 0.96, "hold").verdict == "ok"
    assert Comparison("retain/value_acc", "", 0.98, 0.50, "hold").verdict == "bad"
    # Near zero a relative tolerance means nothing: a tiny absolute change still holds.
    assert Comparison("fluency/rep_4", "", 0.0003, 0.0, "hold").verdict == "ok"
    assert Comparison("fluency/rep_4", "", 0.0003, 0.05, "hold").verdict == "bad"
    assert Comparison("model_utility", "", math.nan, 0.5, "hold").verdict == ""


def test_compare_keeps_table_order_and_only_shared_keys():
    before = {"retain/value_acc": 0.98, "forget/value_acc": 0.92, "only_before": 1.0}
    after = {"forget/value_acc": 0.10, "retain/value_acc": 0.95, "only_after": 2.0}
    rows = compare(before, after)
    assert [r.key for r in rows] == ["forget/value_acc", "retain/value_acc"]
    table = format_table(rows).splitlines()
    assert table[1].split()[-3:] == ["✓", "should", "fall"]
    assert "0.92" in table[1] and "0.1" in table[1]
