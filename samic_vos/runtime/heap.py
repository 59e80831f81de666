"""The process's heap: keep the memory it frees for the next allocation (glibc only).

Scoring a DAVIS frame allocates and frees a few MB of arrays. By default glibc serves such
blocks with ``mmap`` and hands freed heap memory back to the system at once, so every frame
maps its memory again and pays the page faults: on ``eval davis`` that was two thirds of the
scoring time. With larger thresholds the freed blocks stay in the heap and are reused.
"""

from __future__ import annotations

import ctypes
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # blocks below this come from the heap, not from mmap
TRIM_THRESHOLD_BYTES = 64 << 20  # free memory kept at the top of the heap


def keep_freed_memory() -> bool:
    """Let this process keep and reuse the heap memory it frees; whether it was set.

    A process-wide setting: commands that score call it in their own process and in their
    worker processes; a library function never does.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        trim_set = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mmap_set and trim_set)
