"""The ``samic-vos`` command line.

Each subcommand lives in its own module under ``samic_vos/commands/``, which exposes
``register(subparsers)``; the module adds its parser and sets ``func`` (a callable taking the
parsed namespace and returning an exit status). Command modules import heavy libraries (torch,
cv2) inside ``func`` so that ``--help`` stays fast. :func:`main` turns
:class:`~samic_vos.errors.UserError` into one line on stderr and exit status 2, and Ctrl-C into
exit status 130, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from samic_vos import __version__
from samic_vos.errors import UserError

# Modules that contribute subcommands, in the order `--help` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "samic_vos.commands.track",
    "samic_vos.commands.render",
    "samic_vos.commands.train",
    "samic_vos.commands.eval",
    "samic_vos.commands.weights",
    "samic_vos.commands.annotate",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="samic-vos",
        description=(
            "Segment objects through videos and images from one labelled example: "
            "a small network (SAMIC) learns to prompt Segment Anything."
        ),
    )
    parser.add_argument("--version", action="version", version=f"samic-vos {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"samic-vos: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("samic-vos: interrupted", file=sys.stderr)
        return 130
