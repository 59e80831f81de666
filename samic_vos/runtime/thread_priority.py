"""A thread's CPU priority: background work that a person's clicks must never wait behind
(SAMBOX encodes the next images while the current one is being clicked).

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

BACKGROUND_NICE = 19  # the lowest priority: the work runs on what everything else leaves


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
