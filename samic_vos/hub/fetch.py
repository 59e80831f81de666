"""Moving big files: resumable HTTP downloads, SHA-256 hashing, a download lock and a free-space
check, with progress on stderr.

Knows nothing about which files exist: the weights registry (:mod:`samic_vos.hub.weights`) and the
dataset downloads (:mod:`samic_vos.hub.datasets`) decide what to fetch, where to keep it and
what counts as the right file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samic_vos.runtime.errors import UserError
from samic_vos.runtime.version import __version__

log = logging.getLogger(__name__)

# Seconds without a byte from the server before a download is given up (resumable later).
TIMEOUT_S = 60.0
# Read, write and hash in 1 MiB blocks; files above HASH_PROGRESS_BYTES show a hashing bar.
CHUNK_BYTES = 1 << 20
HASH_PROGRESS_BYTES = 64 << 20


def progress_bar(desc: str, total: int | None, initial: int = 0, **kwargs: Any) -> Any:
    """A tqdm progress bar in bytes (KiB/MiB/GiB) on stderr."""
    from samic_vos.runtime.console import bar

    return bar(
        desc=desc,
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        **kwargs,
    )


def sha256_file(path: Path, label: str | None = None) -> str:
    """Lowercase hex SHA-256 of ``path``; files over 64 MiB show a progress bar."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    bar = progress_bar(
        f"verifying {label or path.name}", size, leave=False, disable=size < HASH_PROGRESS_BYTES
    )
    with path.open("rb") as fh, bar:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def download_resumable(url: str, part: Path, label: str, size_hint: int | None = None) -> None:
    """Append ``url``'s bytes to ``part``, resuming after the bytes ``part`` already holds.

    With a non-empty ``part`` an HTTP ``Range: bytes=N-`` request asks for the rest; a server
    that ignores it (200 instead of 206) gets the file written again from byte 0. A 416 answer
    (nothing left to send) returns at once: the caller's checksum decides whether ``part`` is
    whole. ``part`` is kept on any failure so that the next call resumes. ``size_hint`` (the
    whole file's bytes) sizes the progress bar when the server sends no Content-Length.

    Raises:
        OSError, http.client.HTTPException, ValueError: the transfer failed (see
            :func:`describe_error`); ``urllib.error.URLError`` and timeouts are OSErrors.
    """
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"samic-vos/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return
        raise
    with response:
        if offset and response.status != 206:
            offset = 0
        elif offset and not response.headers.get("Content-Range", "").startswith(
            f"bytes {offset}-"
        ):
            raise ValueError(f"the server answered another byte range than {offset}-")
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = offset + expected if expected is not None else size_hint
        received = 0
        with part.open("ab" if offset else "wb") as out, progress_bar(label, total, offset) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received < expected:
        raise ConnectionError(f"connection closed after {offset + received} of {total} bytes")


def describe_error(err: BaseException) -> str:
    """A short one-line reason for a failed transfer ("Connection refused", "HTTP 404 ...")."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        if not isinstance(err.reason, BaseException):
            return str(err.reason)
        err = err.reason
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return " ".join(str(err).split()) or type(err).__name__


def retry_may_help(err: BaseException) -> bool:
    """Whether running a failed transfer again may succeed: not after the server refused the
    request itself (HTTP 4xx: a URL gone, access denied), except a timeout (408), too early
    (425) or too many requests (429)."""
    if isinstance(err, urllib.error.HTTPError):
        return not 400 <= err.code < 500 or err.code in (408, 425, 429)
    return True


@contextlib.contextmanager
def download_lock(final: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``final`` so that two processes never write the same files
    (POSIX only; ``final``'s folder must exist). A second process waits, with a note.

    The holder removes the lock file when done, so no empty file stays in the cache; a process
    that was waiting on the removed file then locks a new one (checked by inode).
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent first downloads fail their checks
        yield
        return
    lock = final.with_name(f".{final.name}.lock")
    waited = False
    while True:
        if waited:  # a holder whose first download failed removed the folder it had made
            lock.parent.mkdir(parents=True, exist_ok=True)
        fh = lock.open("a")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another samic-vos process working on %s", final.name)
                fcntl.flock(fh, fcntl.LOCK_EX)
            if _is_same_file(fh.fileno(), lock):
                break
        except BaseException:
            fh.close()
            raise
        fh.close()  # its holder removed it while we waited: lock the new one
        waited = True
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        fh.close()  # releases the lock


def _is_same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), path.stat())
    except FileNotFoundError:
        return False


def refuse_folder(final: Path) -> None:
    """Raise :class:`UserError` when a folder stands at ``final``, where a download is to be
    renamed (checked before downloading: the rename would fail only after the whole file)."""
    if final.is_dir():
        raise UserError(
            f"{final}: is a folder, not the downloaded file; move it away and run again"
        )


def check_free_space(folder: Path, needed: int, what: str, fix: str) -> None:
    """Raise :class:`UserError` when ``folder``'s disk has fewer than ``needed`` bytes free.

    The message: ``"<what> needs N MiB but <folder> has M MiB free; free some space, or <fix>"``.
    """
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError(
            f"{what} needs {needed >> 20} MiB but {folder} has {free >> 20} MiB free; free some "
            f"space, or {fix}"
        )
