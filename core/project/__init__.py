"""Projects: the typed run configuration (``RunConfig``) and its TOML form, the project store
(SQLite), project files, and what a project holds, read and checked for the app.

May import: data/, model/ and the shared modules.
"""
