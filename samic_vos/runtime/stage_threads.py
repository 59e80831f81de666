"""Torch intra-op threads per pipeline stage, so that small stages hold up on shared machines.

SAM's image encoder is a few large matrix products: it uses every thread it is given, even
when another job takes a core. The other stages are many small operators, each an OpenMP
region of its own: with 2 threads on 2 cores they gain little on an idle machine and collapse
when one core is taken (each region waits for the descheduled thread), while with 1 thread
they cost the same either way (``benchmarks/bench_stage_threads.py``, BENCHMARKS.md "Threads
per stage"). So each stage runs under its own count, set around it and restored after:

- ``encoder``: SAM's image encoder (auto: the process's own count, i.e. every core or
  ``OMP_NUM_THREADS``);
- ``samic``: SAMIC's backbone features and head; ``decoder``: SAM's prompt encoder and mask
  decoder; ``adaptation``: first-frame adaptation steps; ``training``: training steps (auto:
  half the process's count, at least 1 — so 1 on 2 cores, where it was measured: 1.5–1.9x
  slower than 2 threads on an idle machine, 1.4–3x faster as soon as one core is taken).

On a machine of one's own, ``all`` gives a stage the process's count (``threads: {samic: all,
decoder: all}``): on an idle 2-core machine everything but SAM's encoder then takes 0.3–0.4 s
per frame instead of 0.53–0.64 s with ``auto`` (BENCHMARKS.md "Tracking pipeline").

The counts are a job's ``threads:`` config section (:class:`ThreadsConfig`). They only change
the CPU threads torch uses; work on a GPU is unaffected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Literal

import torch

from samic_vos.runtime.config import require

STAGES = ("encoder", "samic", "decoder", "adaptation", "training")
# "auto": these stages get the process's own count; every other stage half of it (at least 1):
# 1 on the 2-core machine where it was measured, leaving room for another job on bigger ones.
ALL_THREADS_STAGES = ("encoder",)

Count = int | Literal["auto", "all"]


@dataclass
class ThreadsConfig:
    """Torch threads per stage: an integer >= 1, ``auto`` or ``all`` (see the module
    docstring)."""

    encoder: Count = "auto"
    samic: Count = "auto"
    decoder: Count = "auto"
    adaptation: Count = "auto"
    training: Count = "auto"

    def __post_init__(self) -> None:
        for name in STAGES:
            value = getattr(self, name)
            ok = value in ("auto", "all") or (
                isinstance(value, int) and not isinstance(value, bool) and value >= 1
            )
            require(ok, name, "an integer >= 1, auto or all", value)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """``torch.set_num_threads(count)`` for the block, the previous count restored after
    (also on an exception); ``None`` leaves the count as it is."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@dataclass(frozen=True)
class StageThreads:
    """Resolved thread counts per stage name (every name of :data:`STAGES`)."""

    counts: dict[str, int]

    @classmethod
    def resolve(cls, config: ThreadsConfig | None = None) -> StageThreads:
        """The counts of ``config`` (default: all ``auto``); ``auto`` and ``all`` resolve
        against the process's current ``torch.get_num_threads()``."""
        config = config or ThreadsConfig()
        available = torch.get_num_threads()
        counts = {}
        for item in fields(config):
            value = getattr(config, item.name)
            if value == "auto":
                value = "all" if item.name in ALL_THREADS_STAGES else max(1, available // 2)
            if value == "all":
                value = available
            counts[item.name] = int(value)
        return cls(counts)

    @classmethod
    def interactive(cls) -> StageThreads:
        """Every stage at the process's count: for SAMBOX, where a person waits on each
        decode and no other stage of ours runs beside it."""
        return cls.resolve(ThreadsConfig(**dict.fromkeys(STAGES, "all")))

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The block runs with stage ``name``'s thread count (one of :data:`STAGES`)."""
        return torch_threads(self.counts[name])
