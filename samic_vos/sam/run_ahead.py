"""Run-ahead: item t+1 is fetched and worked on while the caller handles item t.

The tracking loop uses it to decode frame t+1 and run SAM's image encoder on it while frame t
is prompted (SAMIC, peaks, SAM's decoder): on a GPU the encoder's kernels then fill the gaps
that the small prompting kernels leave. With run-ahead off the very same code runs in the
caller's thread, one item after the other, so results are identical either way.

Memory stays O(1): the worker prepares one item at a time and starts item t+2 only when the
caller takes item t+1, so at most three items with their results are alive at once (the one
the caller is letting go, the one it takes, the one being prepared), whatever the length.

CUDA: the worker issues its work on a stream of its own, after the work that the caller had
queued on its current stream when the item was requested (an event), and waits for it to
finish before handing the result over; so the result is complete when the caller gets it, and
memory the caller freed is never reused by the worker before the caller's kernels are done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

from samic_vos.data.frame_source import Frame
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter

T = TypeVar("T")
R = TypeVar("R")
_END = object()


def run_ahead_enabled(config: EncoderConfig, device: torch.device) -> bool:
    """Whether ``config.run_ahead`` (auto | on | off) runs ahead on ``device`` (auto: CUDA)."""
    if config.run_ahead == "auto":
        return device.type == "cuda"
    return config.run_ahead == "on"


def run_ahead(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    enabled: bool,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[T, R]]:
    """``(item, work(item))`` for each of ``items``, in order.

    With ``enabled``, fetching item t+1 from ``items`` and ``work`` on it run in one worker
    thread while the caller handles item t; otherwise both run in the caller's thread when the
    caller asks for the item. An exception from ``items`` or ``work`` is raised to the caller
    when it asks for that item, as it would be in order.
    """
    device = torch.device(device)
    iterator = iter(items)
    stream = torch.cuda.Stream(device) if enabled and device.type == "cuda" else None

    def produce(ready: torch.cuda.Event | None) -> object:
        item = next(iterator, _END)
        if item is _END:
            return _END
        if stream is None:
            return item, work(item)
        with torch.cuda.stream(stream):
            stream.wait_event(ready)
            result = work(item)
        stream.synchronize()
        return item, result

    if not enabled:
        while (produced := produce(None)) is not _END:
            yield produced  # type: ignore[misc]
        return

    def request(pool: ThreadPoolExecutor) -> Future:
        ready = None
        if stream is not None:
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(device))
        return pool.submit(produce, ready)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-ahead") as pool:
        pending = request(pool)
        while (produced := pending.result()) is not _END:
            pending = request(pool)
            yield produced  # type: ignore[misc]


def embedded_frames(
    frames: Iterable[Frame], segmenter: SamSegmenter, *, ahead: bool, start: int = 0
) -> Iterator[tuple[Frame, ImageEmbedding | None]]:
    """``(frame, SAM's embedding of it)`` for each of ``frames``, in order; what the tracking
    loops (a job's, the Python API's) iterate over.

    Frame t+1 is decoded in a worker thread while the caller handles frame t; with ``ahead``
    (:func:`run_ahead_enabled`) SAM's encoder runs on it there too, else the embedding is
    ``None`` (the caller encodes the frame). Frames before ``start`` (finished by an earlier
    run) are never encoded. Close the iterator (its worker finishes) before the frame source.
    """

    def prepare(frame: Frame) -> ImageEmbedding | None:
        return segmenter.embed(frame.rgb) if ahead and frame.index >= start else None

    return run_ahead(frames, prepare, enabled=True, device=segmenter.device if ahead else "cpu")
