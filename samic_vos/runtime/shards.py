"""Which share of a benchmark this process runs: ``--shard I/N``, torchrun, or a Slurm array.

No scheduler of our own: a user scales out with the launchers they have. The shard comes from
``--shard I/N`` when given, else from torchrun's ``RANK``/``WORLD_SIZE`` (one process per GPU;
``LOCAL_RANK`` picks the GPU), else from a Slurm job array (``SLURM_ARRAY_TASK_ID`` minus
``SLURM_ARRAY_TASK_MIN``, of ``SLURM_ARRAY_TASK_COUNT``), else the whole set (0/1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from samic_vos.runtime.errors import UserError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based); ``local_rank``: torchrun's GPU index, if any."""

    index: int = 0
    count: int = 1
    source: str = "whole set"
    local_rank: int | None = None

    def take(self, items: Sequence[tuple[str, int]]) -> list[str]:
        """This shard's names of ``(name, weight)`` items, as :meth:`owners` deals them; the
        order of ``items`` is kept within the shard."""
        owners = self.owners([weight for _, weight in items])
        return [name for (name, _), owner in zip(items, owners, strict=True) if owner == self.index]

    def owners(self, weights: Sequence[int]) -> list[int]:
        """The shard (0 .. ``count`` - 1) of each item of ``weights`` (frames, pixels,
        episodes): every ``count``-th of them sorted by weight, heaviest first (ties in the
        items' order), so shards get similar totals; every shard computes the same list."""
        ranked = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
        owner = [0] * len(weights)
        for rank, i in enumerate(ranked):
            owner[i] = rank % self.count
        return owner

    @property
    def part(self) -> str:
        """The name of this shard's own files in a run folder: ``I-of-N``."""
        return f"{self.index}-of-{self.count}"


def parse_shard(text: str) -> Shard:
    """``"I/N"`` → :class:`Shard`; one-line :class:`UserError` unless ``0 <= I < N``."""
    index, slash, count = text.partition("/")
    if not (slash and index.strip().isdigit() and count.strip().isdigit()):
        raise UserError(f"shard '{text}': write it as I/N, e.g. 0/4 (I counts from 0)")
    shard = Shard(int(index), int(count), f"shard {text}")
    if shard.count == 0:
        raise UserError(f"shard '{text}': N is the number of shards, at least 1 (e.g. 0/4)")
    if not 0 <= shard.index < shard.count:
        last = f"{shard.count - 1}/{shard.count}"
        raise UserError(f"shard '{text}': I counts from 0 to N-1 (0/{shard.count} ... {last})")
    return shard


def resolve_shard(text: str | None, environ: Mapping[str, str] | None = None) -> Shard:
    """The shard of this process (see the module docstring)."""
    env = os.environ if environ is None else environ
    if text is not None:
        return parse_shard(text)
    try:
        if "RANK" in env and "WORLD_SIZE" in env:
            local = env.get("LOCAL_RANK")
            shard = Shard(
                int(env["RANK"]),
                int(env["WORLD_SIZE"]),
                "torchrun (RANK/WORLD_SIZE)",
                None if local is None else int(local),
            )
        elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            shard = Shard(
                int(env["SLURM_ARRAY_TASK_ID"]) - first,
                int(env["SLURM_ARRAY_TASK_COUNT"]),
                "Slurm array (SLURM_ARRAY_TASK_ID/COUNT)",
            )
        else:
            return Shard()
    except ValueError:
        raise UserError(
            "the launcher's RANK/WORLD_SIZE or SLURM_ARRAY_* are not integers"
        ) from None
    if not 0 <= shard.index < shard.count:
        raise UserError(f"{shard.source}: shard {shard.index} of {shard.count} is out of range")
    return shard
