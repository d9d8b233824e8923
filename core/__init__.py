"""Unlearn Studio engine. Never imports Qt."""
