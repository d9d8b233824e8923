"""Unlearning methods: one module each on the shared base class, found by name in the registry."""
