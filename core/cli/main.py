"""The `unlearn-studio` command: no arguments (or a project file) opens the app; subcommands run headless."""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import sys
from importlib import import_module

from unlearn_studio.core.errors import UserError

# Each module registers its command with add_parser(subparsers) and sets a handler(args) -> exit code.
COMMAND_MODULES = ("run", "sweep", "eval", "check", "info", "data_check", "demo", "extsub", "export", "audit")
EXIT_BAD_INPUT = 2


def build_parser(commands: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unlearn-studio",
        description="Remove a concept, a behaviour or memorized data from a causal language model. "
        "Without a command, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"unlearn-studio {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = subparsers.add_parser("gui", help="open the app (the default)")
    gui.add_argument("project", nargs="?", help="project file to open (default: the demo project)")
    gui.add_argument("--store", help="project store file (default: in the user data folder)")
    gui.add_argument("--screenshot", metavar="PNG", help="save the first window as a PNG once the project has "
                     "loaded, then quit")
    gui.set_defaults(handler=_open_app)
    for name in commands:
        import_module(f"{__package__}.{name}").add_parser(subparsers)
    return parser


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version("unlearn-studio")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _open_app(args: argparse.Namespace) -> int:
    # The app is the one place the engine's entry point reaches into gui/; core itself stays Qt-free.
    from unlearn_studio.gui.app import main as app_main

    return app_main(project=args.project, store=args.store, screenshot=args.screenshot)


def main(argv: list[str] | None = None) -> int:
    """The command line (``argv``: the arguments; None: this process's own, as the program)."""
    if argv is None:
        try:
            return main(sys.argv[1:])
        finally:
            # The process ends next: Python's own clean-up would walk every object torch and
            # transformers made (measured after a run on the demo: 1.8 s of exit, 0.2 s with
            # this); the operating system takes the memory back.
            gc.freeze()
    argv = list(argv)
    if not argv or argv[0].endswith(".toml") or argv[0] in ("--store", "--screenshot"):
        argv = ["gui", *argv]
    # Opening the app, or saying the version, needs no other command's module (some import torch).
    args = build_parser(() if argv[0] in ("gui", "--version") else COMMAND_MODULES).parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
