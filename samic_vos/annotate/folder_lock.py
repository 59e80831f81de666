"""One SAMBOX server per annotations folder: a lock file in the folder, held while it runs.

Two servers on one folder would overwrite each other's clicks and files, so the second is
refused in one line. The lock is an OS advisory lock (``flock``) on
``<annotations>/.sambox/lock``: the kernel releases it when the holder exits, however it
exits (Ctrl-C, SIGKILL, a crash), so a lock file left behind by a dead server is *stale* and
simply taken over; the pid it names is only there for the message. The file itself stays.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from samic_vos.runtime.errors import UserError

logger = logging.getLogger(__name__)

LOCK_FILE = Path(".sambox") / "lock"


class FolderInUse(UserError):
    """Another running SAMBOX server holds the annotations folder."""


def _holder(path: Path) -> str:
    """What the lock file says about its holder ("pid 123 on host, since ...")."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {data['pid']} on {data['host']}, since {data['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _try_lock(fd: int, path: Path, folder: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderInUse(
            f"{folder}: another `samic-vos annotate` is working on this annotations folder "
            f"({_holder(path)}); stop it, or pass another folder with -o"
        ) from None


def check_folder_free(folder: Path) -> None:
    """Raise :class:`FolderInUse` if a running server holds ``folder``; creates nothing (the
    early check of the command line, before SAM is loaded)."""
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    _try_lock(fd, path, folder)
    os.close(fd)


class FolderLock:
    """The lock of annotations folder ``folder``, taken when made (:class:`FolderInUse` if a
    running server holds it); :meth:`release` (or the process's end) lets it go.

    The lock is held on a read-only descriptor: no file stays open for writing in the folder
    (a mount with a file open for writing cannot be remounted read-only)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        _try_lock(fd, self.path, folder)
        self._fd: int | None = fd
        if self.path.stat().st_size:
            logger.info("taking over a stale lock of %s (%s)", folder, _holder(self.path))
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        self.path.write_text(json.dumps(holder), encoding="utf-8")

    def release(self) -> None:
        """Let the lock go (its file stays, emptied if the folder can still be written: a
        stale file is harmless anyway)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.write_text("", encoding="utf-8")
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None
