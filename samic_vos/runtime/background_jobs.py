"""Background jobs: work handed to one worker thread, run in order while the caller goes on.

The tracking loop hands each finished frame's writes (its mask PNG, then its prompts line, then
its overlay frame) to :class:`BackgroundJobs` as one job, and `bench davis` the scoring of each
finished sequence. Jobs run one at a time, in the order they were given, so files on disk grow
exactly as they would written in the loop: a frame's prompts line is never written before its
mask, and line t before line t+1 (the resume of :mod:`samic_vos.inference.track_resume` relies on
both). PNG coding and most of numpy and OpenCV run outside the interpreter lock, so on a machine
with a core the caller leaves free (a GPU machine's CPUs while the GPU works) the jobs take nothing
from the caller; where every core is busy they slow it by about what they take off it
(BENCHMARKS.md "`bench davis` runner overhead").

Memory stays bounded: at most ``depth`` jobs wait; :meth:`BackgroundJobs.submit` blocks until
the oldest is done beyond that. A job that raises stops the jobs after it (as in order, nothing
after it is done) and its exception is raised to the caller at the next ``submit`` or when the
``with`` block ends. Leaving the block, normally or by an exception (Ctrl-C), first waits for
the jobs already given, so every frame the loop finished is on disk; interrupted while it waits
(a second Ctrl-C), it drops the jobs not started yet and waits only for the running one, so no
job runs after the block and none is cut halfway.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

DEPTH = 2  # jobs waiting at most, by default: the frame being written and the one after it


class BackgroundJobs:
    """Run jobs in one worker thread, in the order given; at most ``depth`` of them waiting."""

    def __init__(self, depth: int = DEPTH) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background-jobs")
        self._depth = depth
        self._pending: deque[Future] = deque()
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` after every job given before it; raise an earlier job's exception."""
        self._raise_error()
        self._pending.append(self._pool.submit(self._run, job))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()
        self._raise_error()

    def _run(self, job: Callable[[], None]) -> None:
        if self._error is not None:  # an earlier job failed: none after it runs
            return
        try:
            job()
        except BaseException as error:  # handed to the caller's thread
            self._error = error

    def _raise_error(self) -> None:
        if self._error is not None:  # kept: the jobs after it stay stopped
            raise self._error

    def close(self) -> None:
        """Wait for every job given; raise the first exception a job raised."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:  # interrupted: the jobs not started are dropped, the running one finishes
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._raise_error()

    def __enter__(self) -> BackgroundJobs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        with contextlib.suppress(BaseException):  # the block's own exception is the one raised
            self.close()
