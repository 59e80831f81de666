"""Seconds spent per pipeline stage, measured by wrapping the methods that do each stage.

Stages nest (SAM's decoder runs inside a prompter's ``track``): a second is counted once, for
the innermost stage running in its thread. Each thread nests on its own (the run-ahead encodes
the next frame in a worker thread while the caller prompts this one), so when stages run in
several threads at once their seconds add up to more than the wall time. :meth:`StageTimer.wrap`
replaces a method on one *instance*, so other objects of the class (and other code in the
process) are untouched.

Benchmark runs keep each process's timings in their output folder (:func:`save_timings`:
``OUT/timings/<ns>.json``, one per process and call, as shards and resumed runs add theirs),
and sum them when the run is scored (:func:`total_timings`).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samic_vos.runtime.atomic import atomic_write_text

TIMINGS = "timings"  # the folder of a run's timing records


class StageTimer:
    """Exclusive wall-clock seconds per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._local = threading.local()  # .stack: this thread's running stages
        self._lock = threading.Lock()

    def _stack(self) -> list[tuple[str, float]]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def add(self, stage: str, seconds: float) -> None:
        """Count ``seconds`` for ``stage`` (from any thread)."""
        with self._lock:
            self.seconds[stage] += seconds

    def _enter(self, stage: str) -> None:
        now, stack = time.perf_counter(), self._stack()
        if stack:
            outer, since = stack[-1]
            self.add(outer, now - since)
        stack.append((stage, now))

    def _exit(self) -> None:
        now, stack = time.perf_counter(), self._stack()
        stage, since = stack.pop()
        self.add(stage, now - since)
        if stack:
            stack[-1] = (stack[-1][0], now)

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


def save_timings(
    out: Path, timer: StageTimer, stages: Sequence[str], count: int, wall: float
) -> None:
    """Record one process's work in run folder ``out``: ``count`` items (frames, images) in
    ``wall`` seconds, and the seconds of each of ``stages`` (the last one is the wall time that
    no other stage took). Nothing is written when ``count`` is 0."""
    if not count:
        return
    seconds = {s: timer.seconds.get(s, 0.0) for s in stages[:-1]}
    seconds[stages[-1]] = max(wall - sum(seconds.values()), 0.0)
    folder = out / TIMINGS
    folder.mkdir(exist_ok=True)
    record = {"count": count, "wall": wall, "seconds": seconds}
    atomic_write_text(folder / f"{time.time_ns()}.json", json.dumps(record) + "\n")


def total_timings(out: Path, stages: Sequence[str]) -> tuple[int, float, dict[str, float]]:
    """The items, wall seconds and seconds per stage of every record in ``out`` summed.

    Only the records themselves (``<ns>.json``): a process killed while writing one leaves its
    temporary file (``.<ns>.<8 characters>.part.json``, maybe cut short) beside them."""
    paths = sorted((out / TIMINGS).glob("*.json"))
    records = [json.loads(p.read_text()) for p in paths if not p.name.startswith(".")]
    seconds = {s: sum(r["seconds"][s] for r in records) for s in stages}
    # "frames": the key of bench davis folders written before the few-shot benchmark shared this
    count = sum(r.get("count", r.get("frames", 0)) for r in records)
    return count, sum(r["wall"] for r in records), seconds
