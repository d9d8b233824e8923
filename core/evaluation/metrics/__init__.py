"""Evaluation metrics as pure functions on numbers, token ids and strings (no model, no torch).

One module per family; core/evaluation/scoring.py runs the model and the registered metrics
(core/evaluation/set_metrics.py, suite_metrics.py) feed these:

- likelihood:     answer NLL → P̄, truth ratio and its forget / retain scores
- answers:        value accuracy (the attribute's value in a greedy answer)
- rouge:          ROUGE-L recall of greedy answers
- membership:     Min-K% and LOSS scores, AUC, PrivLeak
- forget_quality: KS test between truth-ratio distributions
- memorization:   MA, EL_n, extraction strength
- mcq:            multiple-choice accuracy
- fluency:        rep-n, perplexity, collapse warnings
- harm:           harmful-answer rate with a pluggable judge (the project names it)
- truthfulness:   share of items where the true answer is likelier than the false one
- utility:        harmonic mean (model utility)
"""
