"""Evaluation: what is measured on which data set, the metrics, the reference model, and how a
run's before/after change is judged.

May import: data/, model/, project/ (the run configuration), and the shared modules. Never run/,
methods/, results/ or the CLI.
"""
