"""The built-in demo world: generated facts, the tokenizer and the small models trained on them.

May import anything below the CLI: it builds its models with model/ and measures them with the
methods' loss helpers. Only the CLI (``demo build``) imports it.
"""
