"""ICU, Iterative Contrastive Unlearning (arXiv 2407.20271): the method in ``method.py``, the
per-epoch refinement (which targets are still memorized) in ``refine.py``, the nearest
non-target neighbours in ``neighbours.py``."""
