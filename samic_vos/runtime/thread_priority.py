"""A thread's CPU priority: background work that a person's clicks must never wait behind
(SAMBOX encodes the next images while the current one is being clicked).

Priority alone leaves the background work on the cores between the scheduler's decisions and
in the caches it shares with the click; :class:`ForegroundGate` also lets it step aside: a
background thread that reaches a pause point while foreground work runs (or ended less than
``linger`` seconds ago: the page draws the answer after the server sent it, and clicks come in
bursts) waits there until the foreground has been quiet that long.

On Linux the nice value belongs to each thread, and the threads it starts inherit it (the
OpenMP workers that torch's operations start from it), so a worker thread lowers its own
priority without touching the process's other threads: where both want the cores, the
scheduler gives the others nearly all of them (nice 19 weighs 15 against nice 0's 1024), and
where they are idle the background work runs at full speed. Elsewhere (``os.setpriority`` sets
a whole process, or is missing) nothing is changed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

BACKGROUND_NICE = 19  # the lowest priority: the work runs on what everything else leaves
# Seconds background work stays paused after foreground work ends (a burst of clicks, the page
# drawing each answer).
FOREGROUND_LINGER_S = 1.5


def lower_this_thread(nice: int = BACKGROUND_NICE) -> bool:
    """Lower the calling thread's priority to nice value ``nice`` (one already lower is kept;
    a priority is never raised); whether the thread now runs at ``nice`` or lower."""
    if not sys.platform.startswith("linux"):
        return False
    thread = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, thread) < nice:
            os.setpriority(os.PRIO_PROCESS, thread, nice)
    except OSError:  # refused (a sandbox): the work runs at the usual priority
        return False
    return True


class ForegroundGate:
    """Foreground sections (:meth:`foreground`) and the pause points of background threads
    (:meth:`pause_point`, returning at once in any thread not marked by
    :meth:`mark_background`). A foreground thread never waits for the background: a pause only
    delays background work. Thread-safe; ``paused_s`` totals the seconds paused.
    """

    def __init__(self, linger: float = FOREGROUND_LINGER_S) -> None:
        self.linger = linger
        self.paused_s = 0.0
        self._changed = threading.Condition()
        self._active = 0
        self._quiet_at = 0.0  # time.monotonic() from which the foreground counts as quiet
        self._stopped = False
        self._local = threading.local()

    def mark_background(self) -> None:
        """Make the calling thread pause at :meth:`pause_point` (a pool's initializer)."""
        self._local.background = True

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Background threads pause while this runs and ``linger`` seconds after."""
        with self._changed:
            self._active += 1
        try:
            yield
        finally:
            with self._changed:
                self._active -= 1
                self._quiet_at = time.monotonic() + self.linger
                self._changed.notify_all()

    def stop_pausing(self) -> None:
        """From now on no thread pauses (those waiting go on): the work is being shut down."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def pause_point(self) -> None:
        """In a background thread: wait while foreground work runs or ran less than
        ``linger`` seconds ago. Elsewhere, or after :meth:`stop_pausing`: nothing."""
        if not getattr(self._local, "background", False):
            return
        started = time.monotonic()
        with self._changed:
            while not self._stopped:
                left = self._quiet_at - time.monotonic()
                if not self._active and left <= 0:
                    break
                self._changed.wait(None if self._active else left)
            self.paused_s += time.monotonic() - started
