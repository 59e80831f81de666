"""Checks that an output can be written, made before any work starts.

A job checks every output path up front, so that a mistake in ``-o`` costs nothing: one line
naming the path, before a model is loaded or a frame decoded.
"""

from __future__ import annotations

import os
from pathlib import Path

from samic_vos.errors import UserError


def _existing_ancestor(path: Path) -> Path:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_writable_dir(folder: Path) -> None:
    """``folder`` is, or can be created as, a folder we can write in.

    Raises:
        UserError: ``folder`` (or a part of its path) is a file, or is not writable.
    """
    folder = Path(folder)
    existing = _existing_ancestor(folder)
    if not existing.is_dir():
        raise UserError(f"{folder}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: not writable ({existing} is read-only); choose another path")


def check_writable_file(path: Path) -> None:
    """``path`` can be written as a file: not a folder, in a writable (or creatable) folder.

    Raises:
        UserError: ``path`` is a folder, or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{path}: not writable; choose another path")
    check_writable_dir(path.parent)
