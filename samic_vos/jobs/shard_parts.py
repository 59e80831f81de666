"""Shards' own record files and their merge: each shard of a collection writes the JSON lines
of its items into ``parts/<I>-of-<N>.jsonl`` (in its items' order), and the summary step
merges them into one file in the collection's order, streamed, byte for byte: the file one
unsharded run writes. Items are dealt in groups (a group: consecutive items that one shard
does together, e.g. `segment`'s batches); ``owners[g]`` is group ``g``'s shard
(:meth:`samic_vos.runtime.shards.Shard.owners`).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from samic_vos.runtime.atomic import atomic_path
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.shards import Shard

PARTS = "parts"  # the folder of the shards' record files in a run folder
PART = re.compile(r"\d+-of-(\d+)\.jsonl")  # a shard's main part (other kinds add a suffix)


def part_path(out: Path, shard: Shard, suffix: str = ".jsonl") -> Path:
    """``out/parts/<I>-of-<N><suffix>``: where ``shard`` writes its records (of one kind)."""
    return out / PARTS / f"{shard.part}{suffix}"


def part_count(out: Path) -> int:
    """N of the parts in ``out/parts`` (all must share it).

    Raises:
        UserError: no parts, or parts of several shard counts.
    """
    counts = {m.group(1) for p in (out / PARTS).glob("*.jsonl") if (m := PART.match(p.name))}
    if len(counts) != 1:
        raise UserError(f"{out}: holds no parts of one sharded run to merge ({out / PARTS})")
    return int(next(iter(counts)))


def missing_records(out: Path, sizes: Sequence[int], owners: Sequence[int], count: int) -> int:
    """Items (groups of ``sizes``) without a complete line in their shard's part yet."""
    expected = [0] * count
    for size, owner in zip(sizes, owners, strict=True):
        expected[owner] += size
    return sum(
        max(expected[i] - complete_lines(part_path(out, Shard(i, count))), 0) for i in range(count)
    )


def complete_lines(path: Path) -> int:
    """How many whole lines ``path`` holds (0 if absent), read in blocks."""
    if not path.is_file():
        return 0
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def part_lines(
    out: Path,
    groups: Sequence[Sequence[str]],
    owners: Sequence[int],
    count: int,
    key: str,
    suffix: str = ".jsonl",
) -> Iterator[bytes]:
    """The shards' part lines in the collection's order: for each group, the next lines of its
    owner's part, each checked to be the record whose ``key`` is the expected name."""
    with contextlib.ExitStack() as stack:
        parts = [
            stack.enter_context(open(part_path(out, Shard(i, count), suffix), "rb"))
            for i in range(count)
        ]
        for names, owner in zip(groups, owners, strict=True):
            for name in names:
                line = parts[owner].readline()
                record = json.loads(line) if line.endswith(b"\n") else {}
                if record.get(key) != name:
                    raise UserError(
                        f"{out / PARTS}: the part of shard {owner}/{count} does not hold "
                        f"'{name}' where expected; run the shards again into a new OUT"
                    )
                yield line


def merge_parts(
    out: Path,
    target: Path,
    groups: Sequence[Sequence[str]],
    owners: Sequence[int],
    count: int,
    key: str,
) -> None:
    """Write ``target`` from the shards' parts (:func:`part_lines`), streamed, atomically."""
    with atomic_path(target) as temporary, open(temporary, "wb") as merged:
        for line in part_lines(out, groups, owners, count, key):
            merged.write(line)
