"""Files that are never half-written.

Whole files are written to a temporary name in the same folder, then renamed
(:func:`atomic_path`): a reader (or a user after Ctrl-C) sees either the old file, the complete
new file, or nothing. Files that grow line by line (``prompts.jsonl``) are written by
:class:`JsonLinesWriter`: each record is one ``write`` of one complete line, and a failed write
is cut back to the last complete line. A full disk or a folder that is not writable is a
:class:`~samic_vos.runtime.errors.UserError` naming the file
(:mod:`samic_vos.runtime.output_paths`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import reporting_write_errors

# A temporary file of atomic_path: ".<stem>.<mkstemp's 8 characters>.part<ext>".
_TEMPORARY_NAME = re.compile(r"\..*\.[A-Za-z0-9_]{8}\.part(\.[^./]*)?")
# A folder of atomic_folder: ".<name>.<mkdtemp's 8 characters>" (".part": the new one).
_TEMPORARY_FOLDER = re.compile(r"\.(?P<name>.*)\.[A-Za-z0-9_]{8}(?P<part>\.part)?")
# What link(2) answers on a filesystem without hard links (FAT, exFAT, some FUSE mounts).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
# Linux renameat2(2): paths relative to the working folder; fail on an existing target.
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


def _temporary_file(final: Path, ext: str) -> tuple[int, str]:
    """A new temporary file beside ``final`` named as :data:`_TEMPORARY_NAME` says (open
    descriptor, path)."""
    return tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{ext}", dir=final.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (a unique name, no file yet); on success rename
    it onto ``path``.

    The temporary name keeps ``path``'s extension (or ``suffix``) so that writers which pick
    a format from the extension (Pillow, video muxers) still work. On an exception the
    temporary file is removed and ``path`` is left untouched; a full disk or a permission error
    (in the block or in the rename), or a missing folder, is raised as a UserError naming
    ``path``.
    """
    final = Path(path)
    ext = final.suffix if suffix is None else suffix
    with reporting_write_errors(final):
        try:
            fd, tmp_name = _temporary_file(final, ext)
        except FileNotFoundError as err:  # not the temporary name: the user never gave it
            raise UserError(f"{final}: cannot write it, folder {final.parent} not found") from err
        os.close(fd)
        tmp = Path(tmp_name)
        # The writer creates the file anew: opening the empty placeholder again would truncate
        # it, and ext4 (auto_da_alloc) then flushes the file to disk when it is closed (a mask
        # PNG took 10-43 ms so, 4-7 ms as a new file, on our machine).
        tmp.unlink()
        try:
            yield tmp
            # mkstemp creates the file with mode 0600; give it the mode a plain open() would.
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty temporary folder beside ``path`` to fill; on success it takes the
    place of ``path`` (an older ``path`` is moved aside, then removed), so ``path`` never holds
    a mix of two writes nor a half-written one. On an exception the temporary folder is
    removed and ``path`` is left untouched. Between the two renames ``path`` is briefly
    absent (a process killed there: :func:`restore_moved_aside`); one writer at a time."""
    final = Path(path)
    with reporting_write_errors(final):
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            aside = None
            if final.exists():
                aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
                os.replace(final, aside / final.name)
            try:
                os.replace(tmp, final)
            except BaseException:
                if aside is not None:
                    os.replace(aside / final.name, final)
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def is_leftover(name: str) -> bool:
    """Whether the file name ``name`` is a temporary file of :func:`atomic_path`."""
    return _TEMPORARY_NAME.fullmatch(name) is not None


def remove_leftovers(folder: str | os.PathLike[str], of: str | None = None) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` left directly in ``folder`` when its
    process was killed mid-write (those of the file named ``of`` alone, when given); returns
    them. Only for files no other process writes at the same time (their temporary files
    would go too)."""
    pattern = _TEMPORARY_NAME
    if of is not None:
        final = Path(of)
        pattern = re.compile(
            re.escape(f".{final.stem}.") + r"[A-Za-z0-9_]{8}" + re.escape(f".part{final.suffix}")
        )
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False) and pattern.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def restore_moved_aside(folder: str | os.PathLike[str]) -> list[Path]:
    """Put back the folders that :func:`atomic_folder` moved aside in ``folder`` and did not
    replace, its process killed between its two renames (``<name>`` missing, the earlier one
    in ``.<name>.<8 characters>/<name>``): the earlier write stands, as when a write fails.
    Returns the folders restored. Only for a folder no other process writes into; then
    :func:`remove_leftover_folders` removes what is left."""
    restored = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = _TEMPORARY_FOLDER.fullmatch(entry.name)
            if not entry.is_dir(follow_symlinks=False) or match is None or match["part"]:
                continue
            earlier, final = Path(entry.path) / match["name"], Path(folder) / match["name"]
            if earlier.is_dir() and not final.exists():
                os.replace(earlier, final)
                restored.append(final)
    return restored


def remove_leftover_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the folders that :func:`atomic_folder` left directly in ``folder`` when its
    process was killed midway; returns them. Only for a folder no other process writes into."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False) and _TEMPORARY_FOLDER.fullmatch(entry.name):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_create_text(path: str | os.PathLike[str], text: str) -> bool:
    """Write UTF-8 ``text`` to ``path`` atomically unless ``path`` exists; returns whether it
    was written. Of processes creating one file at once, exactly one does: the complete
    temporary file gets the name by a hard link, which fails on an existing name (on a
    filesystem without hard links, by a rename that refuses to replace, Linux's
    ``renameat2``); readers see it whole or absent.

    Raises:
        UserError: the filesystem offers neither (a full disk or a folder that is not
            writable, as every write here).
    """
    final = Path(path)
    with reporting_write_errors(final):
        fd, tmp_name = _temporary_file(final, final.suffix)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8"))
            os.chmod(tmp, 0o666 & ~_umask())
            try:
                os.link(tmp, final)
            except FileExistsError:
                return False
            except OSError as err:
                if err.errno not in _NO_HARD_LINKS:
                    raise
                return _rename_no_replace(tmp, final)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _rename_no_replace(tmp: Path, final: Path) -> bool:
    """Rename ``tmp`` to ``final`` unless ``final`` exists (one atomic step); whether it did."""
    linux = sys.platform.startswith("linux")
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if linux else None
    if rename is None:
        code = errno.ENOSYS
    elif rename(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(final), _RENAME_NOREPLACE):
        code = ctypes.get_errno()
    else:
        return True
    if code == errno.EEXIST:
        return False
    if code in (errno.EINVAL, errno.ENOSYS, *_NO_HARD_LINKS):
        raise UserError(
            f"{final}: this filesystem has neither hard links nor exclusive renames, which "
            "shards need to share a folder; put the output on a local or network filesystem "
            "that has them (ext4, XFS, NFS, Lustre...), or run without shards"
        )
    raise OSError(code, os.strerror(code), str(final))


class JsonLinesWriter:
    """Append JSON records to ``path``, one line each; the file only ever holds whole lines.

    ``append=False`` starts the file empty; ``append=True`` continues it, first cutting off a
    half line that a killed process may have left at its end. Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        self.path = Path(path)
        with reporting_write_errors(self.path):
            self._file = open(self.path, "ab" if append else "wb", buffering=0)
            try:
                self._size = self._file.seek(0, os.SEEK_END)
                if append and self._size:
                    self._truncate(_whole_lines_size(self.path))
            except BaseException:
                self._file.close()
                raise

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line of JSON (UTF-8)."""
        data = (json.dumps(record) + "\n").encode("utf-8")
        with reporting_write_errors(self.path):
            try:
                written = 0
                while written < len(data):  # a full disk can accept part of a write
                    written += self._file.write(data[written:])
            except BaseException:
                self._truncate(self._size)
                raise
        self._size += len(data)

    def _truncate(self, size: int) -> None:
        self._file.truncate(size)
        self._file.seek(size)
        self._size = size

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _whole_lines_size(path: Path) -> int:
    """The size of ``path`` up to and including its last newline."""
    data = path.read_bytes()
    return data.rfind(b"\n") + 1
