"""What a finished run gives the user: its report (before/after table, per-item answers,
frontier), side-by-side comparison with the original, and export as a PEFT adapter folder.

May import: run/, methods/, evaluation/, project/, model/, data/ and the shared modules.
"""
