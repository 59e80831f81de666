"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (missing file, bad mask, missing weights).
The CLI prints its message as one line on stderr, with no traceback, and exits with status 2.
Messages say what is wrong *and* how to fix it. Library code names the *argument* to change in
backticks (`` `sam_checkpoint` ``), never a command-line flag: a Python caller reads it as it
is, and the CLI shows each such name as its own flag (``--sam-checkpoint``), see
:func:`samic_vos.commands.cli.user_message`.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment; reported as one line, exit status 2."""

    exit_code = 2


def size_text(shape: tuple[int, ...]) -> str:
    """How messages show an image size: ``WxH`` of an (H, W, ...) shape (another shape as it is)."""
    return f"{shape[1]}x{shape[0]}" if len(shape) >= 2 else str(shape)
