"""Data sets: roles, file formats, column mapping, prompt templates and validation."""
