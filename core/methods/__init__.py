"""Unlearning methods on one shared base class (``base.py``), found by name in the registry.

A method is one module (``npo.py``), or one folder when it needs several files (``elm/``:
``method.py`` holds the class, the other files its loss maths and helpers). ``losses.py`` holds the
loss functions several methods share; ``presets.py`` the setting presets the app offers.

May import: evaluation/ (its caches and scores), model/, data/, project/ (presets read project
files) and the shared modules. Never run/, results/ or the CLI.
"""
