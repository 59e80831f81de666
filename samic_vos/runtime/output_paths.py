"""Output paths: checked before any work starts, and write failures reported as one line.

A job checks every output path up front (:func:`check_writable_dir`,
:func:`check_writable_file`), so that a mistake in ``-o`` costs nothing: one line naming the
path, before a model is loaded or a frame decoded. The checks create nothing that stays: a
folder that does not exist yet is checked through its nearest existing parent, by creating and
removing a probe file there (which also catches read-only mounts, and permissions that
``os.access`` misjudges, as for root).

:func:`reporting_write_errors` is the one place where an ``OSError`` while writing an output (a
full disk, a folder that became read-only) becomes a :class:`UserError` naming the file;
:func:`removing_new_folders` leaves no empty folder behind a failed job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from samic_vos.runtime.errors import UserError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_WRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def write_error(
    path: str | os.PathLike[str], err: OSError, fix: str = "choose another path"
) -> UserError | None:
    """The one-line error for ``err`` raised while writing ``path``; None if not the user's.
    ``fix``: what to do about a path that is not writable."""
    if err.errno in DISK_FULL_ERRNOS:
        return UserError(
            f"{path}: cannot write it, the disk is full ({err.strerror}); free some space or "
            "choose an output on another disk"
        )
    if err.errno in NOT_WRITABLE_ERRNOS:
        return UserError(f"{path}: not writable ({err.strerror}); {fix}")
    return None


@contextlib.contextmanager
def reporting_write_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk or a permission error inside the block into a UserError on ``path``."""
    try:
        yield
    except OSError as err:
        error = write_error(path, err)
        if error is None:
            raise
        raise error from err


def _existing_ancestor(path: Path) -> Path:
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_writable_dir(folder: str | os.PathLike[str], fix: str = "choose another path") -> None:
    """``folder`` is, or can be created as, a folder we can write in (``fix``: what the
    message tells to do otherwise).

    Raises:
        UserError: ``folder`` (or a part of its path) is a file, or is not writable.
    """
    folder = Path(folder)
    existing = _existing_ancestor(folder)
    if not existing.is_dir():
        raise UserError(f"{folder}: {existing} is a file, not a folder; {fix}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".samic-vos-probe.", dir=existing)
    except OSError as err:
        raise write_error(folder, err, fix) or UserError(
            f"{folder}: cannot be written ({existing}: {err.strerror}); {fix}"
        ) from err
    os.close(fd)
    os.unlink(probe)


def check_writable_file(path: str | os.PathLike[str]) -> None:
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


@contextlib.contextmanager
def removing_new_folders(path: str | os.PathLike[str]) -> Iterator[None]:
    """On an exception inside the block, remove the folders up to ``path`` that it created.

    The folders that do not exist when the block starts (``path`` and its missing parents) are
    removed, deepest first, if they are empty when the block fails; a folder that holds
    anything stays. Use around the work that creates ``path``, so that a failure leaves no
    empty folder behind.
    """
    missing = []
    folder = Path(path).absolute()
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        yield
    except BaseException:
        for folder in missing:
            with contextlib.suppress(OSError):  # not empty, or already gone
                folder.rmdir()
        raise
