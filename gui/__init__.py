"""Unlearn Studio desktop front end (PySide6). Never trains."""
