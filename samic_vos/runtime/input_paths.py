"""Input paths checked before work starts.

:func:`require_input` is the one check that a given path exists, with the one message layout
``<path>: <what> not found<detail>``. The library checks its inputs with it, and the commands
call it on the paths they were given before they import the libraries that do the work (torch,
OpenCV), so the cheapest user mistake is one line on stderr and exit status 2 within the
interpreter's start-up time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from samic_vos.runtime.errors import UserError


def require_input(
    path: str | os.PathLike[str] | None,
    what: str,
    *,
    kind: Literal["file", "folder", "any"] = "file",
    detail: str = "",
) -> None:
    """Raise :class:`UserError` ``"<path>: <what> not found<detail>"`` when ``path`` is given
    (not ``None``) but is not a ``kind`` (a file, a folder, or either).

    ``detail`` follows the message as it is: the argument's name (`` (`first_mask`)``) or how to
    fix it (``"; pass the folder that holds ..."``).
    """
    if path is None:
        return
    path = Path(path)
    found = {"file": path.is_file, "folder": path.is_dir, "any": path.exists}[kind]()
    if not found:
        raise UserError(f"{path}: {what} not found{detail}")
