"""Seconds spent per pipeline stage, measured by wrapping the methods that do each stage.

Stages nest (SAM's decoder runs inside a prompter's ``track``): a second is counted once, for
the innermost stage running. :meth:`StageTimer.wrap` replaces a method on one *instance*, so
other objects of the class (and other code in the process) are untouched.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from typing import Any


class StageTimer:
    """Exclusive wall-clock seconds per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[tuple[str, float]] = []

    def _enter(self, stage: str) -> None:
        now = time.perf_counter()
        if self._stack:
            outer, since = self._stack[-1]
            self.seconds[outer] += now - since
        self._stack.append((stage, now))

    def _exit(self) -> None:
        now = time.perf_counter()
        stage, since = self._stack.pop()
        self.seconds[stage] += now - since
        if self._stack:
            self._stack[-1] = (self._stack[-1][0], now)

    def wrap(self, obj: Any, method: str, stage: str) -> None:
        """Count the time of ``obj.method`` calls as ``stage``."""
        inner = getattr(obj, method)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._enter(stage)
            try:
                return inner(*args, **kwargs)
            finally:
                self._exit()

        setattr(obj, method, timed)
