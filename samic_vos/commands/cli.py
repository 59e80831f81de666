"""The ``samic-vos`` command line.

Each subcommand lives in its own module under ``samic_vos/commands/``, which exposes
``register(subparsers)``; the module adds its parser and sets ``func`` (a callable taking the
parsed namespace and returning an exit status). Command modules import heavy libraries (torch,
cv2) inside ``func`` so that ``--help`` stays fast. :func:`main` sets up logging and progress
bars (:mod:`samic_vos.runtime.console`), turns :class:`~samic_vos.runtime.errors.UserError` into one
line on stderr and exit status 2, Ctrl-C into exit status 130 and SIGTERM into 143 (128 + the signal
number, the shell's convention), never a traceback. SIGTERM unwinds exactly as Ctrl-C does (it
raises :class:`Terminated`, a ``KeyboardInterrupt``), so temporary files are removed and
finished outputs stay complete.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from samic_vos.commands.common import Parser, verbosity
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.version import __version__

# Modules that contribute subcommands, in the order `--help` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "samic_vos.commands.track",
    "samic_vos.commands.segment",
    "samic_vos.commands.render",
    "samic_vos.commands.export",
    "samic_vos.commands.train",
    "samic_vos.commands.eval",
    "samic_vos.commands.bench",
    "samic_vos.commands.weights",
    "samic_vos.commands.data",
    "samic_vos.commands.annotate",
)

# Library messages name arguments in backticks; the CLI shows each as its flag.
ARGUMENT_FLAGS: dict[str, str] = {
    "sam_checkpoint": "--sam-checkpoint",
    "sam_model": "--sam-model",
    "backbone_weights": "--backbone-weights",
    "random_backbone": "--random-backbone",
    "samic_checkpoint": "--samic",
    "samic": "--samic",  # load_models' name of the same file
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
    "root": "--root",
    "port": "--port",
    "ref": "--ref",
    "ref_mask": "--ref-mask",
    "ref_sambox": "--ref-sambox",
    "train": "--train",
    "fewshot": "--fewshot",
    "train_fraction": "--train-fraction",
}


def flag_names(message: str) -> str:
    """``message`` with every backticked argument name shown as its flag; what the CLI does to
    every line it prints on stderr (log lines too)."""
    return re.sub(r"`(\w+)`", lambda m: ARGUMENT_FLAGS.get(m.group(1), m.group(0)), message)


def user_message(err: UserError) -> str:
    """The error's message with every backticked argument name shown as its flag."""
    return flag_names(str(err)).replace("\n", " ")


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


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and subcommand of ``parser`` (walked through its subparsers), each as the
    argv that names it: ``[["track"], ..., ["bench", "davis"], ...]``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append([*prefix, name])
                found += command_paths(sub, (*prefix, name))
    return found


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # Further SIGTERMs while unwinding would cut the clean-up short; SIGKILL still works.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only, as signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    from samic_vos.runtime import console

    console.configure(verbosity(args), translate=flag_names)
    try:
        with _sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except UserError as err:
        logging.getLogger("samic_vos").error(user_message(err))
        return err.exit_code
    except Terminated:
        logging.getLogger("samic_vos").error("terminated")
        return Terminated.exit_code
    except KeyboardInterrupt:
        logging.getLogger("samic_vos").error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`... --json | head`): end quietly, as Unix
        # tools do, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
