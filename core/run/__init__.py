"""Running: the training loop, checkpoints and exact resume, the data streams of a run, the
pre-flight checks and memory estimate, sweeps and launch commands.

May import: methods/, evaluation/, project/, model/, data/ and the shared modules.
"""
