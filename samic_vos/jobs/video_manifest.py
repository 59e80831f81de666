"""The videos of a `samic-vos track` collection: a manifest file, or videos given with their
first masks, read and checked before any work.

A manifest is CSV (a header row naming the columns) or JSON Lines (one object a line), with
the columns ``video`` (a video file or a frame folder), ``first_mask`` (frame 0's mask),
optional ``masks`` (a folder of later frames' masks, as `track --masks`) and optional ``name``
(the video's output folder, ``OUT/<name>/``; default: the video's file stem or folder name).
Relative paths are relative to the manifest's folder. Every row is checked here (unknown
columns, a missing file, a name used twice or that is no plain folder name): one line naming
the row, before anything is written. What needs decoding (a broken video, a mask of the
wrong size) is found when the video's turn comes, and only that video fails.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from samic_vos.runtime.errors import UserError

MANIFEST_SUFFIXES = (".csv", ".jsonl")
COLUMNS = ("video", "first_mask", "masks", "name")
REQUIRED = ("video",)


@dataclass(frozen=True)
class VideoItem:
    """One video of a collection: where it is, its masks and its output folder's name."""

    name: str
    video: Path
    first_mask: Path | None
    masks: Path | None = None


def is_manifest(path: Path) -> bool:
    """Whether ``path`` is a manifest file (by its suffix) rather than a video."""
    return path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file()


def read_manifest_file(path: Path) -> list[VideoItem]:
    """The checked videos of manifest ``path`` (see the module docstring).

    Raises:
        UserError: a malformed row, an unknown column, a missing file, a repeated name.
    """
    base = path.parent
    items = []
    for row_number, row in _rows(path):
        where = f"{path}: row {row_number}"
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise UserError(
                f"{where}: unknown column(s) {', '.join(unknown)}; use {', '.join(COLUMNS)}"
            )
        values = {k: str(v).strip() for k, v in row.items() if v not in (None, "")}
        for key in REQUIRED:
            if key not in values:
                raise UserError(f"{where}: no `{key}`; every row names its video")
        if "first_mask" not in values and "masks" not in values:
            raise UserError(f"{where}: no mask; give `first_mask` and/or `masks`")
        paths = {k: base / values[k] for k in ("video", "first_mask", "masks") if k in values}
        video = paths["video"]
        item = VideoItem(
            values.get("name") or video.stem, video, paths.get("first_mask"), paths.get("masks")
        )
        _check_item(item, where)
        items.append(item)
    if not items:
        raise UserError(f"{path}: the manifest lists no video")
    check_names(items, str(path))
    return items


def given_videos(videos: Sequence[Path], first_masks: Sequence[Path]) -> list[VideoItem]:
    """Videos given on the command line, each with its first mask (same order), checked."""
    if len(videos) != len(first_masks):
        raise UserError(
            f"{len(videos)} videos but `first_mask` given {len(first_masks)} time(s); give one "
            "first mask per video, in the same order (or list them in a manifest)"
        )
    items = [VideoItem(v.stem, v, m) for v, m in zip(videos, first_masks, strict=True)]
    for item in items:
        _check_item(item, str(item.video))
    # On the command line a video is named after its file or folder: two folders named alike
    # (a/frames/, b/frames/) need a manifest, which names each one.
    check_names(items, "the videos given", "list them in a manifest whose `name` column names each")
    return items


def _check_item(item: VideoItem, where: str) -> None:
    if not item.video.exists():
        raise UserError(f"{where}: video {item.video} not found")
    if item.first_mask is not None and not item.first_mask.is_file():
        raise UserError(f"{where}: first mask {item.first_mask} not found")
    if item.masks is not None and not item.masks.is_dir():
        raise UserError(f"{where}: mask folder {item.masks} not found")
    if item.name in (".", "..") or "/" in item.name or "\\" in item.name or not item.name:
        raise UserError(f"{where}: name '{item.name}' is no folder name; name it plainly")


def check_names(
    items: Sequence[VideoItem], where: str, fix: str = "give each video its own `name`"
) -> None:
    """Every output name used once (compared without case, for case-insensitive disks); ``fix``:
    what the message tells to do otherwise."""
    seen: dict[str, VideoItem] = {}
    for item in items:
        key = item.name.casefold()
        if key in seen:
            raise UserError(
                f"{where}: name '{item.name}' is used by {seen[key].video} and {item.video}; {fix}"
            )
        seen[key] = item


def _rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(row number from 1, columns) of a CSV or JSON Lines manifest."""
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark (else the same as utf-8)
        with open(path, newline="", encoding="utf-8-sig") as handle:
            if path.suffix.lower() == ".csv":
                for number, row in enumerate(csv.DictReader(handle), 1):
                    if None in row:
                        raise UserError(f"{path}: row {number} has more cells than the header")
                    yield number, dict(row)
                return
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as err:
                    raise UserError(f"{path}: row {number} is not JSON ({err})") from None
                if not isinstance(row, dict):
                    raise UserError(f"{path}: row {number} is not a JSON object")
                yield number, row
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the manifest ({err})") from None
