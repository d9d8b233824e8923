"""The `unlearn-studio` command line: the outermost layer of core.

``main.py`` parses the command and dispatches to one module per subcommand (``add_parser(subparsers)``
and a handler(args) -> exit code). The CLI may import anything in core; nothing in core imports it.
"""
