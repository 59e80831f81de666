"""Folders on their own mounts for tests: a tiny disk that fills, a folder nobody can write."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``folder`` with ``options`` (root only: skipped where impossible)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
    mounted = subprocess.run(command, capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@contextlib.contextmanager
def readonly_folder(folder: Path, fill: Callable[[Path], object] | None = None) -> Iterator[Path]:
    """``folder``, made a folder this process cannot write into once ``fill(folder)`` has put
    its files there (a tmpfs remounted read-only for root, who writes through any permission
    bits; else chmod)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        if fill is not None:
            fill(folder)
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    with tmpfs(folder, "size=16m"):
        if fill is not None:
            fill(folder)
        remount_readonly(folder)
        yield folder


def remount_readonly(folder: Path, attempts: int = 100) -> None:
    """Remount the tmpfs on ``folder`` read-only, waiting while a file there is still open for
    writing (a server's background save: the kernel answers EBUSY until it is closed)."""
    command = ["mount", "-o", "remount,ro", str(folder)]
    for _ in range(attempts - 1):
        if subprocess.run(command, capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    subprocess.run(command, check=True)
