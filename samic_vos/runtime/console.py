"""What the user sees on stderr: log lines and progress bars, one path for every job.

Library modules log through :mod:`logging` (loggers ``samic_vos.<module>``) and draw progress
with :func:`bar`. The CLI calls :func:`configure` once: messages go to stderr through
``tqdm.write`` (so a bar is never torn by a line), each prefixed ``samic-vos:`` (warnings
``samic-vos: warning:``); ``-q`` shows warnings and errors only and hides the bars, ``-v`` adds
debug lines. Results meant for programs (tables, JSON, paths) go to stdout, never here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")

PREFIX = "samic-vos"
# progress: bars are drawn (off with -q); bars: a bar was made in this process (tqdm, whose
# import takes ~30 ms, is imported by the first bar).
_state = {"progress": True, "bars": False}


class _TqdmHandler(logging.Handler):
    """Writes records on stderr with ``tqdm.write``, above any progress bar (plainly before
    the process's first bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if _state["bars"]:
                from tqdm import tqdm

                tqdm.write(self.format(record), file=sys.stderr)
            else:
                print(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    def __init__(self, translate: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self.translate = translate

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.translate is not None:
            message = self.translate(message)
        if record.levelno >= logging.ERROR:
            return f"{PREFIX}: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"{PREFIX}: warning: {message}"
        return f"{PREFIX}: {message}"


def configure(verbosity: int = 0, translate: Callable[[str], str] | None = None) -> None:
    """Set up the ``samic_vos`` loggers and progress bars for a CLI run.

    Args:
        verbosity: ``-1`` quiet (warnings and errors, no bars), ``0`` normal (info and bars),
            ``1`` or more verbose (debug lines too).
        translate: applied to every message before it is shown (the CLI shows the argument
            names that library messages put in backticks as its flags).
    """
    root = logging.getLogger("samic_vos")
    for handler in list(root.handlers):
        if isinstance(handler, _TqdmHandler):
            root.removeHandler(handler)
    handler = _TqdmHandler()
    handler.setFormatter(_Formatter(translate))
    root.addHandler(handler)
    levels = {-1: logging.WARNING, 0: logging.INFO}
    root.setLevel(levels.get(verbosity, logging.DEBUG))
    _state["progress"] = verbosity >= 0


def progress_enabled() -> bool:
    """Whether progress bars are drawn (off with ``-q``)."""
    return _state["progress"]


def bar(iterable: Iterable[T] | None = None, *, disable: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm progress bar on stderr, hidden when the CLI runs quietly or ``disable``."""
    from tqdm import tqdm

    _state["bars"] = True
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=disable or not progress_enabled(), **kwargs)


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless one: ``counted(1, "image")`` is ``"1 image"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
