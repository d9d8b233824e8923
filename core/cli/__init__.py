"""The `unlearn-studio` command line: the outermost layer of core.

``main.py`` parses the command and dispatches to one module per subcommand (``add_parser(subparsers)``
and a handler(args) -> exit code). The CLI may import anything in core; nothing in core imports it.
A command imports the engine in its handler, not at the top of its module: every command line
builds the whole parser, and `--help`, `data check` or opening the app should not wait the
seconds torch, transformers and peft take to import (tests/e2e/test_cli.py checks it).
"""
