"""The ``samic-vos`` command line.

Each subcommand lives in its own module under ``samic_vos/commands/``, which exposes
``register(subparsers)``; the module adds its parser and sets ``func`` (a callable taking the
parsed namespace and returning an exit status). Command modules import heavy libraries (torch,
cv2) inside ``func`` so that ``--help`` stays fast. :func:`main` sets up logging and progress
bars (:mod:`samic_vos.console`), turns :class:`~samic_vos.errors.UserError` into one line on
stderr and exit status 2, and Ctrl-C into exit status 130, never a traceback.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence

from samic_vos import __version__, console
from samic_vos.commands.common import Parser, verbosity
from samic_vos.errors import UserError

# Modules that contribute subcommands, in the order `--help` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "samic_vos.commands.track",
    "samic_vos.commands.render",
    "samic_vos.commands.train",
    "samic_vos.commands.eval",
    "samic_vos.commands.bench",
    "samic_vos.commands.weights",
)

# Library messages name arguments in backticks; the CLI shows each as its flag.
ARGUMENT_FLAGS: dict[str, str] = {
    "sam_checkpoint": "--sam-checkpoint",
    "sam_model": "--sam-model",
    "backbone_weights": "--backbone-weights",
    "random_backbone": "--random-backbone",
    "samic_checkpoint": "--samic",
    "device": "--device",
    "backend": "--backend",
    "out_dir": "-o",
    "davis_root": "--davis-root",
    "sambox": "--sambox",
    "resume": "--resume",
    "first_mask": "--first-mask",
    "masks_dir": "--masks",
    "overlay": "--overlay",
    "force": "--force",
    "init_hsnet": "--init-hsnet",
    "resolution": "--resolution",
    "split": "--set",
}


def user_message(err: UserError) -> str:
    """The error's message with every backticked argument name shown as its flag."""
    return re.sub(
        r"`(\w+)`", lambda m: ARGUMENT_FLAGS.get(m.group(1), m.group(0)), str(err)
    ).replace("\n", " ")


def build_parser() -> Parser:
    """The top-level parser with every registered subcommand."""
    import importlib

    parser = Parser(
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
        parser.print_help(sys.stderr)
        return 2
    console.configure(verbosity(args))
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        logging.getLogger("samic_vos").error(user_message(err))
        return err.exit_code
    except KeyboardInterrupt:
        logging.getLogger("samic_vos").error("interrupted")
        return 130
