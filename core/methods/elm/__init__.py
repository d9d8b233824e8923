"""ELM, Erasure of Language Memory (arXiv 2410.02760): the method in ``method.py``, its loss
maths in ``losses.py``, its expert/novice phrasings in ``phrasings.py``."""
