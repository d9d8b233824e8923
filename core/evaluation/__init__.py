"""Evaluation: what is measured on which data, the metrics, the reference model, and how a run's
before/after change is judged.

One job per module:
- suite.py          the sets of a project (its roles and [evaluation.sets]), tiers, paraphrase views
- passes.py         teacher-forced scoring and greedy answers, batch by batch
- scoring.py        per-item observations of one set, per kind of set
- registry.py       the metric registry: one function plus one registration per metric
- set_metrics.py    metrics of one set;  suite_metrics.py: metrics that combine sets
- aggregates.py     how per-item values make a metric's number (and its resamples)
- measure.py        one model measured on a list of sets
- reference.py      the reference model's numbers; caching.py: the before and reference caches
- evaluate.py       evaluate(): a model on a suite, with progress and cancel
- result.py         EvalResult and its JSON file
- stats.py          bootstrap intervals and exact tests
- targets.py        each metric's goal and target;  verdicts.py: judge(before, after)
- table.py          plain text: the tables and every metric's meaning (eval --explain)
- run_evaluation.py RunEvaluator, the runner's evaluate_fn
- metrics/          the metric formulas as pure functions

May import: data/, model/, project/ (the run configuration), and the shared modules. Never run/,
methods/, results/, demo/ or the CLI (a project names its harm judge, which is loaded by name).
"""
