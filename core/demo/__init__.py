"""The built-in demo world: generated facts, the tokenizer and the small models trained on them."""
