"""Models: loading a base causal LM and its tokenizer (one build at a time), where LoRA goes,
adapter arithmetic (Ext-Sub), and batched generation.

May import: data/ (prompt templates) and the shared modules.
"""
