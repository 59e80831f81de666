"""Output paths: checked before the work starts, and write failures reported as one line.

:func:`check_output_file` and :func:`check_output_folder` are called before a job decodes,
scores or renders anything, so that a path that can never be written is refused at once, not
after the work. They create nothing that stays: a folder that does not exist yet is checked
through its nearest existing parent (by creating and removing a probe file there, which also
catches read-only mounts and permissions that ``os.access`` gets wrong).

:func:`reporting_write_errors` is the one place where an ``OSError`` while writing an output
(a full disk, a folder that became read-only) becomes a :class:`UserError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from samic_vos.errors import UserError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_WRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def write_error(path: str | os.PathLike[str], err: OSError) -> UserError | None:
    """The one-line error for ``err`` raised while writing ``path``; None if not the user's."""
    if err.errno in DISK_FULL_ERRNOS:
        return UserError(
            f"{path}: cannot write it, the disk is full ({err.strerror}); free some space or "
            "choose an output on another disk"
        )
    if err.errno in NOT_WRITABLE_ERRNOS:
        return UserError(f"{path}: not writable ({err.strerror}); choose another path")
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


def check_output_file(path: str | os.PathLike[str]) -> None:
    """UserError unless the file ``path`` can be written (created, or replaced).

    ``path`` must not be a folder, and its folder (or, when that does not exist yet, the
    nearest existing parent, where it will be created) must be a writable folder.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the name of a file to write")
    _check_folder_writable(path.parent, path)


def check_output_folder(path: str | os.PathLike[str]) -> None:
    """UserError unless ``path`` is, or can be created as, a folder this process writes into."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file, but a folder is needed here; choose another path")
    _check_folder_writable(path, path)


def _check_folder_writable(folder: Path, wanted: Path) -> None:
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"{existing}: is a file, so {wanted} cannot be created; choose another path"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".samic-vos-probe.", dir=existing)
    except OSError as err:
        raise write_error(wanted, err) or UserError(
            f"{wanted}: cannot be written ({existing}: {err.strerror}); choose another path"
        ) from err
    os.close(fd)
    os.unlink(probe)


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
