"""Entry point of the ``fairpack`` command: wires each sub-command module into argparse.

A sub-command module exposes ``register(subparsers) -> None``, which adds its parser and
sets ``handler`` (a function of the parsed namespace returning the exit code) as default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from fairpack import __version__

# Imported lazily so that `fairpack simulate` never pays for the Kubernetes client.
COMMANDS: tuple[str, ...] = ("plan", "replay", "simulate", "status")

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every sub-command of COMMANDS registered."""
    parser = argparse.ArgumentParser(prog="fairpack", description="fairpack scheduling suite")
    parser.add_argument("--version", action="version", version=f"fairpack {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"fairpack.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
