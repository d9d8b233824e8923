"""The robustness audit: did a finished run's model forget, or does it only hide what it knew?

Unlearning that only suppresses the trained answer string comes back after a few steps of
fine-tuning, under other prompts, and stays readable from the hidden states. The audit puts a
run's model (the base with the run's adapter, "unlearned") through three families of attack, the
same attack on the model before unlearning ("original": the adapter off, on the same loaded base)
and on the project's reference model (trained without the forget data), and compares them on the
evaluation's headline forget metric:

- relearn.py    fine-tune each model for k steps on a slice of the forget data, on related data
                and on unrelated text; the forget metric on the items not in the slice after each k
- prompts.py    held-out paraphrases, expert framings, few-shot prompts, other templates;
                sampling.py: n samples at temperature 1 (any that states the fact counts)
- probes.py     linear probes per layer on the last prompt token's hidden state, trained on retain
                rows and tested on forget rows; logit_lens.py: the true value's rank per layer

One job per module besides: settings.py (what the audit does, checked), targets.py (the set it
attacks and the data it relearns from), models.py (the three models on one loaded base),
measuring.py (measurements through the evaluation, with progress and cancel), recovery.py (the
recovery ratio and its interval), result.py (the stored result), verdict.py (the verdict in plain
words), audit.py (the whole audit of a run).

May import what core/results/ may: run/, methods/, evaluation/, project/, model/, data/ and the
shared modules.
"""
